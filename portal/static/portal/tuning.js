// Tuning in the portal, no build step: the start form's pre-flight estimate, and a run's live progress bar and
// loss curve (an inline SVG), polled once a second from the session-authenticated status endpoint.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var FINISHED = ["succeeded", "failed", "canceled"];

  function number(value) {
    return typeof value === "number" ? value.toLocaleString("en-US") : "—";
  }

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    });
  }

  // ------------------------------------------------------------ the start form's estimate

  function estimateForm(form) {
    var url = form.getAttribute("data-estimate-url");
    var error = form.querySelector("[data-estimate-error]");
    var seq = 0;
    var timer = null;
    function show(figures) {
      form.querySelectorAll("[data-estimate]").forEach(function (cell) {
        var name = cell.getAttribute("data-estimate");
        var value = figures ? figures[name] : null;
        cell.textContent = value == null ? "—" : name === "expected_seconds" ? "about " + value + " s" : number(value);
      });
    }
    function update() {
      var params = new URLSearchParams();
      ["dataset", "method", "epochs"].forEach(function (name) {
        var field = form.elements[name];
        if (field && field.value) params.set(name, field.value);
      });
      var mine = ++seq;
      getJson(url + "?" + params.toString()).then(function (res) {
        if (mine !== seq) return;
        show(res.ok ? res.body : null);
        error.hidden = res.ok;
        error.textContent = res.ok ? "" : res.body.error ? res.body.error.message : "No estimate.";
      }, function () { if (mine === seq) show(null); });
    }
    form.addEventListener("change", update);
    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(update, 300); });
    update();
  }

  // ------------------------------------------------------------ a run's progress and loss curve

  function lossCurve(svg, empty, points, totalSteps) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    empty.hidden = points.length > 0;
    if (!points.length) return;
    var W = 600, H = 220, left = 52, right = 14, top = 12, bottom = 30;
    var maxStep = Math.max(totalSteps || 0, points[points.length - 1][0], 1);
    var maxLoss = Math.max.apply(null, points.map(function (p) { return p[1]; })) * 1.1 || 1;
    var x = function (step) { return left + (step / maxStep) * (W - left - right); };
    var y = function (loss) { return top + (1 - loss / maxLoss) * (H - top - bottom); };
    function el(name, attrs, text) {
      var node = document.createElementNS(SVG, name);
      Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
      if (text != null) node.textContent = text;
      svg.appendChild(node);
      return node;
    }
    for (var i = 0; i <= 4; i++) {
      var value = (maxLoss * i) / 4;
      el("line", { x1: left, x2: W - right, y1: y(value), y2: y(value), class: i ? "grid-line" : "axis" });
      el("text", { x: left - 6, y: y(value) + 3, "text-anchor": "end" }, value.toFixed(value < 1 ? 2 : 1));
    }
    el("line", { x1: left, x2: left, y1: top, y2: H - bottom, class: "axis" });
    el("text", { x: left, y: H - 10, "text-anchor": "start" }, "0");
    el("text", { x: W - right, y: H - 10, "text-anchor": "end" }, "step " + maxStep);
    var path = points.map(function (p) { return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }).join(" ");
    el("polyline", { points: path, class: "loss-line", "data-points": points.length });
    points.slice(-80).forEach(function (p) {
      el("circle", { cx: x(p[0]), cy: y(p[1]), r: 3, class: "loss-point" }).appendChild(
        Object.assign(document.createElementNS(SVG, "title"), { textContent: "step " + p[0] + ": loss " + p[1] })
      );
    });
  }

  function tuningRun(root, initial) {
    var url = root.getAttribute("data-status-url");
    var field = function (name) { return document.querySelector("[data-field='" + name + "']"); };
    var history = {};
    var svg = root.querySelector("[data-loss-svg]");
    var empty = root.querySelector("[data-loss-empty]");
    var bar = root.querySelector("[role=progressbar]");

    function remember(data) {
      (data.loss_history || []).forEach(function (p) { history[p[0]] = p[1]; });
      var progress = data.progress || {};
      if (progress.step > 0 && typeof progress.loss === "number") history[progress.step] = progress.loss;
    }

    function render(data) {
      var p = data.progress || {};
      var status = field("status");
      status.textContent = data.status.charAt(0).toUpperCase() + data.status.slice(1);
      status.className = "badge badge-" + data.status;
      var share = data.status === "succeeded" ? 1 : p.total_steps ? p.step / p.total_steps : 0;
      field("bar").style.width = (share * 100).toFixed(1) + "%";
      bar.setAttribute("aria-valuemax", p.total_steps || 100);
      bar.setAttribute("aria-valuenow", p.step || 0);
      field("step").textContent = p.total_steps ? p.step + " / " + p.total_steps : "—";
      field("epoch").textContent = typeof p.epoch === "number" && p.epoch ? p.epoch.toFixed(2) : "—";
      field("loss").textContent = typeof p.loss === "number" ? p.loss.toFixed(4) : "—";
      field("eta").textContent = FINISHED.indexOf(data.status) >= 0 ? "—"
        : typeof p.eta_seconds === "number" ? "about " + Math.round(p.eta_seconds) + " s"
        : data.status === "queued" ? "waiting for a worker" : "estimating…";
      var list = root.querySelector("[data-events]");
      if (list && data.events && data.events.length !== list.children.length) {
        list.textContent = "";
        data.events.forEach(function (e) {
          var item = document.createElement("li");
          item.className = "event-" + e.level;
          var time = document.createElement("time");
          time.className = "muted mono";
          time.dateTime = e.created_at;
          time.textContent = (e.created_at || "").slice(11, 19);
          item.appendChild(time);
          item.appendChild(document.createTextNode(" " + e.message));
          list.appendChild(item);
        });
      }
      var points = Object.keys(history).map(Number).sort(function (a, b) { return a - b; })
        .map(function (step) { return [step, history[step]]; });
      lossCurve(svg, empty, points, p.total_steps);
    }

    function poll() {
      setTimeout(function () {
        getJson(url).then(function (res) {
          if (!res.ok) return poll();
          remember(res.body);
          render(res.body);
          if (FINISHED.indexOf(res.body.status) >= 0) {
            window.location.reload();  // the server renders the finished run: metrics, parameters, the model id
            return;
          }
          poll();
        }, poll);
      }, 1000);
    }

    remember(initial);
    render(initial);
    if (FINISHED.indexOf(initial.status) < 0) poll();
  }

  var form = document.querySelector("form[data-estimate-url]");
  if (form) estimateForm(form);
  var root = document.querySelector("[data-tuning-job][data-status-url]");
  var initial = document.getElementById("tuning-status");
  if (root && initial) tuningRun(root, JSON.parse(initial.textContent));
})();
