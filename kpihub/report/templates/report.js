// Renders every chart of the page from the specs inlined in #kpihub-specs (vegaEmbed is set by the
// Vega bundle, a module script before this one). When all are drawn, <body data-charts="N/M">: N drawn
// of M; a chart that fails says so in its place instead of leaving a blank.
const specs = JSON.parse(document.getElementById("kpihub-specs").textContent);
const places = Array.from(document.querySelectorAll("[data-chart]"));
const drawn = await Promise.allSettled(places.map((el) =>
  vegaEmbed(el, specs[el.dataset.chart], { actions: false, renderer: "svg" }).catch((err) => {
    el.textContent = "This chart could not be drawn: " + err;
    throw err;
  })
));
const ok = drawn.filter((d) => d.status === "fulfilled").length;
document.body.dataset.charts = ok + "/" + places.length;
