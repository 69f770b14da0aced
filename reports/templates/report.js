(function () {
  "use strict";
  const report = JSON.parse(document.getElementById("report-data").textContent);
  const drawn = Object.entries(report.figures).map(function (entry) {
    const figure = entry[1];
    return Plotly.newPlot(document.getElementById("chart-" + entry[0]), figure.data, figure.layout, report.config);
  });
  Promise.all(drawn).then(function () { document.body.dataset.charts = "ready"; });

  function key(row, column, numeric) {
    const cell = row.cells[column];
    const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent;
    return numeric ? (cell.dataset.value === undefined ? NaN : Number(raw)) : raw.toLowerCase();
  }
  function order(a, b, ascending) {
    if (typeof a === "number" && (isNaN(a) || isNaN(b))) { return isNaN(a) - isNaN(b); }
    const sign = ascending ? 1 : -1;
    return typeof a === "number" ? sign * (a - b) : sign * (a < b ? -1 : a > b ? 1 : 0);
  }
  function sortBy(th) {
    const table = th.closest("table");
    const ascending = th.getAttribute("aria-sort") !== "ascending";
    const numeric = th.classList.contains("num");
    table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const rows = Array.from(table.tBodies[0].rows);
    const column = th.cellIndex;
    rows.sort(function (a, b) { return order(key(a, column, numeric), key(b, column, numeric), ascending); });
    table.tBodies[0].append.apply(table.tBodies[0], rows);
  }
  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
})();
