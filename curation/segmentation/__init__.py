"""Segmentation: pipelines, training from sparse ground truth, blockwise and tri-axis
prediction, bioimage.io model packages with curation model cards, reproduction checks.

Modules (import what you use; ``pipeline``, ``card`` and ``schemas`` do not import torch):

* ``pipeline``: :class:`~.pipeline.SegmentationPipeline`, ``load_pipeline`` (pipelines/*.yaml)
* ``data``: training material from an image, sparse labels and annotated slices
* ``augment``: the patch sampler and augmentations
* ``train``: :func:`~.train.train` -> :class:`~.train.TrainingResult`
* ``inference``: :func:`~.inference.plan_inference`, :func:`~.inference.predict_block`
  (one block, no scheduling), :func:`~.inference.predict_blockwise` (a simple driver)
* ``card``: :class:`~.card.ModelCard` (``config.curation`` of the package)
* ``package``: ``write_package``, ``load_model`` (sha256-checked, tensors only), bioimage.io
  validation and test
* ``segment``: ``segment`` a volume with a loaded model -> ``PredictionParameters`` (what
  the prediction's lineage records), ``reproduce`` it into scratch arrays and compare
* ``reproduce``: compare two predictions, bit for bit or within bioimage.io's tolerance
* ``architectures``: the frozen network files (``unet_v1.py``)
* ``resample``, ``metrics``, ``schemas``
"""
