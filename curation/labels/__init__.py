"""Label layers: volunteer annotations, their consensus, and versioned label storage."""
