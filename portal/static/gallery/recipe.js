// A showcase's recipe run from its page: POST the visitor's inputs, then poll the run until it ends, showing each
// step's result as its job finishes (the server submits each next step when the previous job finishes).
(function () {
  "use strict";
  var section = document.getElementById("recipe");
  var form = document.getElementById("recipe-form");
  if (!section || !form) return;
  var live = document.getElementById("recipe-live");
  var status = form.querySelector("[data-run-status]");
  var recordBox = document.getElementById("recipe-record");
  var csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  var current = null;
  // The page's texts in its language (portal/script_texts.py): "%(name)s" placeholders filled in here.
  var texts = JSON.parse(document.getElementById("recipe-texts").textContent);
  function t(key, values) {
    return (texts[key] || key).replace(/%\((\w+)\)s/g, function (_, name) { return String((values || {})[name]); });
  }
  function statusText(value) { return texts.statuses[value] || value; }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function stepNode(step) {
    var li = el("li", { "class": "recipe-step", "data-testid": "step-result", "data-step": step.id, "data-status": step.status });
    var head = el("div", { "class": "small muted" });
    head.appendChild(el("strong", {}, step.title));
    head.appendChild(document.createTextNode(" · " + step.capability + " · " + step.model + " · "));
    head.appendChild(el("span", { "class": "step-status" }, statusText(step.status)));
    li.appendChild(head);
    var d = step.display;
    if (d) {
      if (d.image) {
        li.appendChild(el("img", { "class": "result-image", src: d.image, width: d.width, height: d.height,
          alt: t("generated", { prompt: (step.input || {}).prompt || "" }) }));
      } else if (d.tags) {
        var box = el("div");
        d.tags.forEach(function (tag) { box.appendChild(el("span", { "class": "tag" }, tag)); });
        li.appendChild(box);
      } else if (d.label) {
        var p = el("p");
        p.appendChild(el("strong", { "data-testid": "step-label" }, d.label));
        (d.scores || []).forEach(function (s) { p.appendChild(el("span", { "class": "small muted" }, " " + s.label + " " + s.score)); });
        li.appendChild(p);
      } else {
        li.appendChild(el("p", { "class": "step-text" }, d.text));
      }
    } else if (step.error) {
      li.appendChild(el("p", { "class": "notice notice-warning" }, step.error.message));
    }
    return li;
  }

  function show(run) {
    current = run;
    live.replaceChildren.apply(live, run.steps.filter(function (s) { return s.status !== "waiting"; }).map(stepNode));
    var done = run.steps.filter(function (s) { return s.status === "succeeded"; }).length;
    status.textContent = run.status === "running" ? t("running", { done: done, total: run.steps.length })
      : run.status === "succeeded" ? t(done === 1 ? "done_one" : "done", { done: done }) : t("failed", { message: (run.error || {}).message || "" });
    status.setAttribute("data-status", run.status);
    recordBox.hidden = !(run.status === "succeeded" && run.can_record);
  }

  function poll(url) {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (run) {
        if (run.error && !run.steps) { status.textContent = run.error.message; return; }
        show(run);
        if (run.status === "running") setTimeout(function () { poll(url); }, 700);
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var inputs = {};
    form.querySelectorAll("textarea").forEach(function (t) { inputs[t.name] = t.value; });
    live.replaceChildren();
    status.textContent = t("starting");
    fetch(section.getAttribute("data-runs-url"), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ inputs: inputs })
    }).then(function (r) { return r.json(); }).then(function (run) {
      if (!run.steps) { status.textContent = (run.error || {}).message || t("not_started"); return; }
      show(run);
      poll(run.url);
    });
  });

  recordBox.querySelector("button").addEventListener("click", function () {
    if (!current) return;
    fetch(current.url + "/record", { method: "POST", credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrf } })
      .then(function (r) { return r.json(); })
      .then(function (run) { recordBox.hidden = true; status.textContent = run.recorded ? t("recorded") : (run.error || {}).message; });
  });
})();
