// The annotated-transcript page of `msa predict --html` (msa/predict/html.py inlines this file and
// the data it reads). Every string of the data reaches the page as text (textContent, properties,
// setAttribute), never as markup: a cue holding an img tag with an onerror handler shows as
// those characters.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("msa-data").textContent);
  const root = document.getElementById("player");
  const chart = document.getElementById("chart");
  const SVG_NS = chart.namespaceURI; // the parser's own: no namespace URL written here
  const CHART_HEIGHT = 170; // px
  const MARGIN = { left: 34, right: 22, top: 8, bottom: 22 }; // px around the plot area
  const MIN_TICK_SPACING = 70; // px between time labels
  const TICK_STEPS = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]; // s
  const AUDIO_ONLY_PATTERN = "audio-only";
  const rows = data.rows;
  const duration = data.duration > 0 ? data.duration : 1;
  const series = data.mode === "windows" ? data.windows : rows; // what the timeline draws
  const multimodal = series.some((item) => item.source === "audio+video");

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function shape(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    return node;
  }

  // 75.3 -> "1:15.3" (tenths), 3725 -> "1:02:05.0"; decimals 0 drops the tenths.
  function clock(seconds, decimals) {
    const tenths = Math.round(seconds * 10);
    const hours = Math.floor(tenths / 36000);
    const minutes = Math.floor((tenths % 36000) / 600);
    const rest = (tenths % 600) / 10;
    const secs = decimals ? rest.toFixed(1).padStart(4, "0") : String(Math.floor(rest)).padStart(2, "0");
    const head = hours ? hours + ":" + String(minutes).padStart(2, "0") : String(minutes);
    return head + ":" + secs;
  }

  function labelOf(item) {
    return item.top === null ? item.source : item.top;
  }

  function colourOf(item) {
    if (item.top !== null) return data.colours[item.top];
    return data.unclassified_colours[item.source] || data.unclassified_colours["no face"];
  }

  // Dark text on light colours, white on dark ones (relative luminance of the sRGB values).
  function textColourOn(hex) {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.5 ? "#212529" : "#ffffff";
  }

  function distribution(item) {
    const pairs = Object.entries(item.probabilities).sort((a, b) => b[1] - a[1]);
    if (!pairs.length) return "no prediction (" + item.source + ")";
    return pairs.map(([label, p]) => label + " " + p.toFixed(2)).join("\n");
  }

  // ---------------------------------------------------------------------------------- the page

  document.title = data.title + " - emotions";
  const header = element("header");
  header.append(element("h1", null, data.title));
  const facts = element("dl", "facts");
  const spans =
    data.mode === "windows"
      ? data.windows.length + " windows merged into " + rows.length + " segments"
      : rows.length + " subtitle cues";
  for (const [term, value] of [
    ["model", data.model],
    ["labels", data.labels.join(", ")],
    ["annotated", spans + " over " + clock(data.duration, 1)],
  ]) {
    facts.append(element("dt", null, term), element("dd", null, value));
  }
  header.append(facts);

  let media = null;
  const stage = element("figure", "stage");
  if (data.media) {
    media = element(data.media.kind, "media");
    media.controls = true;
    media.preload = "metadata";
    media.src = data.media.src;
    stage.append(media, element("figcaption", null, data.media.name + (data.media.embedded ? " (embedded)" : "")));
  } else {
    stage.append(element("p", "no-media", "No recording with this page: the transcript and the timeline only."));
  }

  const timeline = element("section", "timeline");
  timeline.append(chart, legend());

  const controls = element("div", "controls");
  const filterLabel = element("label", null, "Show ");
  const filter = element("select");
  filter.id = "filter";
  filterLabel.append(filter);
  const shown = element("span", "shown");
  controls.append(filterLabel, shown);

  const transcript = element("ol");
  transcript.id = "transcript";
  const rowNodes = rows.map(rowNode);
  transcript.append(...rowNodes);
  root.append(header, stage, timeline, controls, transcript);
  fillFilter();

  function legend() {
    const list = element("ul", "legend");
    const entry = (text, swatchClass, colour) => {
      const item = element("li");
      const swatch = element("span", "swatch " + swatchClass);
      if (colour) swatch.style.backgroundColor = colour;
      item.append(swatch, document.createTextNode(text));
      list.append(item);
      return swatch;
    };
    data.labels.forEach((label) => entry(label, "", data.colours[label]));
    const sources = new Set(series.map((item) => item.source));
    for (const [source, colour] of Object.entries(data.unclassified_colours)) {
      if (sources.has(source)) entry(source, "", colour);
    }
    if (multimodal && sources.has("audio")) {
      entry(data.audio_only.label, "hatch", null).style.color = data.audio_only.colour; // the hatch's
    }
    if (data.mode === "cues") entry("cue start / end", "boundary", null);
    return list;
  }

  function rowNode(row, index) {
    const node = element("li", "row");
    node.dataset.index = String(index);
    node.dataset.start = String(row.start);
    node.dataset.end = String(row.end);
    node.dataset.label = labelOf(row);
    node.tabIndex = 0;
    node.title = distribution(row);
    const colour = colourOf(row);
    const tag = element("span", "tag", row.top === null ? row.source : row.top + " " + row.probability.toFixed(2));
    tag.style.backgroundColor = colour;
    tag.style.color = textColourOn(colour);
    const text =
      row.text === null
        ? element("span", "text none", row.windows + (row.windows === 1 ? " window" : " windows"))
        : element("span", "text", row.text);
    const bar = element("span", "bar");
    for (const [label, p] of Object.entries(row.probabilities)) {
      const part = element("span");
      part.style.width = (100 * p).toFixed(2) + "%";
      part.style.backgroundColor = data.colours[label];
      bar.append(part);
    }
    node.append(
      element("span", "time", clock(row.start, 1) + " \u2013 " + clock(row.end, 1)),
      tag,
      text,
      element("span", "source", row.source),
      bar
    );
    node.addEventListener("click", () => seek(row.start));
    node.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        seek(row.start);
      }
    });
    return node;
  }

  function fillFilter() {
    const counts = new Map();
    rows.forEach((row) => counts.set(labelOf(row), (counts.get(labelOf(row)) || 0) + 1));
    const option = (value, text, count) => {
      const node = element("option", null, text + " (" + count + ")");
      node.value = value;
      node.disabled = count === 0;
      filter.append(node);
    };
    option("", "every moment", rows.length);
    data.labels.forEach((label) => option(label, label, counts.get(label) || 0));
    Object.keys(data.unclassified_colours).forEach((source) => {
      if (counts.has(source)) option(source, source, counts.get(source));
    });
    filter.addEventListener("change", applyFilter);
    applyFilter();
  }

  function applyFilter() {
    const wanted = filter.value;
    let visible = 0;
    rowNodes.forEach((node) => {
      node.hidden = wanted !== "" && node.dataset.label !== wanted;
      visible += node.hidden ? 0 : 1;
    });
    shown.textContent = visible + " of " + rows.length + (data.mode === "windows" ? " segments" : " cues");
  }

  // ------------------------------------------------------------------------------ the timeline

  let scale = null; // {x(t), width} of the last drawing
  let cursor = null;

  // Runs of [time, probabilities] without a gap, as msa/predict/plot.py draws them: windows at
  // their centres; cues as steps over [start, min(end, next start)]; unclassified items break runs.
  function runs() {
    const out = [];
    let current = null;
    series.forEach((item, index) => {
      if (item.top === null) {
        current = null;
        return;
      }
      const values = data.labels.map((label) => item.probabilities[label]);
      if (!current) out.push((current = []));
      if (data.mode === "windows") {
        current.push([(item.start + item.end) / 2, values]);
        return;
      }
      const next = index + 1 < series.length ? series[index + 1].start : Infinity;
      const end = Math.max(item.start, Math.min(item.end, next));
      current.push([item.start, values], [end, values]);
      if (end < next) current = null;
    });
    return out;
  }

  function draw() {
    const width = Math.max(200, Math.round(chart.getBoundingClientRect().width));
    const plotWidth = width - MARGIN.left - MARGIN.right;
    const plotHeight = CHART_HEIGHT - MARGIN.top - MARGIN.bottom;
    const x = (t) => MARGIN.left + (Math.min(Math.max(t, 0), duration) / duration) * plotWidth;
    const y = (p) => MARGIN.top + (1 - p) * plotHeight;
    scale = { x, plotWidth };
    chart.setAttribute("width", width);
    chart.setAttribute("height", CHART_HEIGHT);
    chart.setAttribute("viewBox", "0 0 " + width + " " + CHART_HEIGHT);
    chart.replaceChildren();

    const defs = shape("defs", {});
    const pattern = shape("pattern", { id: AUDIO_ONLY_PATTERN, patternUnits: "userSpaceOnUse", width: 6, height: 6 });
    pattern.append(shape("path", { d: "M-1,1 l2,-2 M0,6 l6,-6 M5,7 l2,-2", stroke: data.audio_only.colour, "stroke-width": 0.8 }));
    defs.append(pattern);
    chart.append(defs);

    const rect = (start, end, attributes) =>
      shape("rect", { x: x(start), y: y(1), width: Math.max(0, x(end) - x(start)), height: plotHeight, ...attributes });
    series.forEach((item) => {
      if (item.top === null) chart.append(rect(item.start, item.end, { fill: colourOf(item) }));
    });
    for (const run of runs()) {
      let below = run.map(() => 0);
      data.labels.forEach((label, k) => {
        const above = run.map(([, values], i) => below[i] + values[k]);
        const points = run
          .map(([t], i) => x(t) + "," + y(above[i]))
          .concat(run.map(([t], i) => x(t) + "," + y(below[i])).reverse());
        chart.append(shape("polygon", { points: points.join(" "), fill: data.colours[label], "fill-opacity": 0.9 }));
        below = above;
      });
    }
    if (multimodal) {
      series.forEach((item) => {
        if (item.source === "audio") chart.append(rect(item.start, item.end, { fill: "url(#" + AUDIO_ONLY_PATTERN + ")" }));
      });
    }
    if (data.mode === "cues") {
      const times = new Set(rows.flatMap((row) => [row.start, row.end]));
      times.forEach((t) => {
        chart.append(shape("line", { x1: x(t), x2: x(t), y1: y(0), y2: y(1), stroke: data.cue_boundary_colour, "stroke-width": 0.6 }));
      });
    }
    [0, 0.25, 0.5, 0.75, 1].forEach((p) => {
      chart.append(shape("line", { x1: x(0), x2: x(duration), y1: y(p), y2: y(p), class: "grid" }));
      if (p % 0.5 === 0) chart.append(label(String(p), MARGIN.left - 6, y(p) + 4, "end"));
    });
    const step = TICK_STEPS.find((s) => (plotWidth * s) / duration >= MIN_TICK_SPACING) || 3600;
    for (let t = 0; t <= duration + 1e-9; t += step) {
      chart.append(shape("line", { x1: x(t), x2: x(t), y1: y(0), y2: y(0) + 4, class: "tick" }));
      chart.append(label(clock(t, step < 1 ? 1 : 0), x(t), CHART_HEIGHT - 6, "middle"));
    }
    cursor = shape("line", { x1: 0, x2: 0, y1: y(1) - 4, y2: y(0), class: "cursor" });
    const overlay = shape("rect", { x: x(0), y: y(1), width: plotWidth, height: plotHeight, class: "overlay" });
    const hint = shape("title", {});
    hint.textContent = "click to play from here";
    overlay.append(hint);
    overlay.addEventListener("click", (event) => {
      const box = chart.getBoundingClientRect(); // CSS pixels, which the drawing's units may not be
      const at = ((event.clientX - box.left) * width) / box.width;
      seek(((at - MARGIN.left) / plotWidth) * duration);
    });
    chart.append(cursor, overlay);
    moveCursor(media ? media.currentTime : 0);
  }

  function label(text, at, baseline, anchor) {
    const node = shape("text", { x: at, y: baseline, "text-anchor": anchor });
    node.textContent = text;
    return node;
  }

  function moveCursor(t) {
    const at = scale.x(t);
    cursor.setAttribute("x1", at);
    cursor.setAttribute("x2", at);
  }

  // ------------------------------------------------------------------------------ playback

  let current = -1;

  // The row playing at t: of those spanning it, the one starting last (cues may overlap).
  function rowAt(t) {
    let found = -1;
    rows.forEach((row, index) => {
      if (row.start <= t && t < row.end && (found < 0 || row.start >= rows[found].start)) found = index;
    });
    return found;
  }

  function follow(t) {
    moveCursor(t);
    const index = rowAt(t);
    if (index === current) return;
    if (current >= 0) rowNodes[current].classList.remove("current");
    current = index;
    if (index >= 0) {
      rowNodes[index].classList.add("current");
      reveal(rowNodes[index]);
    }
  }

  // Scroll the transcript (not the page) to a row that has left its visible part.
  function reveal(node) {
    if (node.hidden) return;
    const top = node.offsetTop;
    const visibleTop = transcript.scrollTop;
    if (top < visibleTop || top + node.offsetHeight > visibleTop + transcript.clientHeight) {
      transcript.scrollTo({ top: top - transcript.clientHeight / 3, behavior: "smooth" });
    }
  }

  function seek(t) {
    const time = Math.min(Math.max(t, 0), duration);
    if (media) media.currentTime = time;
    follow(time);
  }

  let ticking = false;
  function tick() {
    follow(media.currentTime);
    ticking = !media.paused && !media.ended;
    if (ticking) requestAnimationFrame(tick);
  }

  if (media) {
    for (const name of ["timeupdate", "seeked", "loadedmetadata"]) {
      media.addEventListener(name, () => follow(media.currentTime));
    }
    media.addEventListener("play", () => {
      if (!ticking) requestAnimationFrame(tick);
      ticking = true;
    });
  }

  let redraw = 0;
  window.addEventListener("resize", () => {
    cancelAnimationFrame(redraw);
    redraw = requestAnimationFrame(draw);
  });
  draw();
})();
