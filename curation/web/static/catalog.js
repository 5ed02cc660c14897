// Live filtering of the catalog cards as the librarian types (the form still works without it).
(() => {
  "use strict";
  const input = document.querySelector('.search input[name="q"]');
  const cards = [...document.querySelectorAll("#cards .card")];
  const count = document.getElementById("count");
  if (!input || !cards.length) return;
  input.addEventListener("input", () => {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const card of cards) {
      const hit = words.every((w) => card.dataset.search.includes(w));
      card.hidden = !hit;
      if (hit) shown++;
    }
    count.textContent = `${shown} of ${cards.length} acquisition(s)`;
  });
})();
