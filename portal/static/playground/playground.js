// The playground: one form per capability, run as a real job, follow it until it finishes (text generation and
// dialogue show their tokens as they arrive, over server-sent events; the others poll), show the result and the
// same call as curl and Python. Vanilla JS, no build step.
(function () {
  "use strict";
  var form = document.getElementById("playground");
  if (!form) return;
  var preset = JSON.parse(document.getElementById("playground-preset").textContent);
  var catalogue = JSON.parse(document.getElementById("playground-capabilities").textContent);
  // The page's texts in its language (portal/script_texts.py): "%(name)s" placeholders filled in here.
  var texts = JSON.parse(document.getElementById("playground-texts").textContent);
  function t(key, values) {
    return (texts[key] || key).replace(/%\((\w+)\)s/g, function (_, name) { return String((values || {})[name]); });
  }
  function statusText(value) { return texts.statuses[value] || value; }
  var examples = {};
  catalogue.forEach(function (c) { examples[c.name] = c.example; });
  var statusBox = form.querySelector("[data-status]");
  var resultBox = form.querySelector("[data-result]");
  var rawBox = form.querySelector("[data-raw]");
  var codeBox = form.querySelector("[data-code]");
  var runButton = form.querySelector("[data-run]");
  var codeLanguage = "curl";
  var polling = null;

  function current() { return form.querySelector("input[name=capability]:checked").value; }
  function panel(name) { return form.querySelector('[data-capability="' + name + '"]'); }

  // ------------------------------------------------------------ chat turns
  function addTurn(role, content) {
    var list = panel("dialogue").querySelector("[data-turns]");
    var index = list.children.length + 1;
    var row = document.createElement("div");
    row.className = "turn";
    row.innerHTML =
      '<div><label class="sr-only" for="turn-role-' + index + '" data-role-label></label>' +
      '<select id="turn-role-' + index + '" data-role><option>user</option><option>assistant</option><option>system</option></select></div>' +
      '<div><label class="sr-only" for="turn-content-' + index + '" data-content-label></label>' +
      '<textarea id="turn-content-' + index + '" rows="2" data-content></textarea></div>' +
      '<button class="btn btn-danger btn-small" type="button" data-remove-turn>×</button>';
    row.querySelector("[data-role-label]").textContent = t("role_of_turn", { n: index });
    row.querySelector("[data-content-label]").textContent = t("turn", { n: index });
    row.querySelector("[data-remove-turn]").setAttribute("aria-label", t("remove_turn", { n: index }));
    row.querySelector("[data-role]").value = role || "user";
    row.querySelector("[data-content]").value = content || "";
    list.appendChild(row);
    return row;
  }
  function turns() {
    return Array.prototype.map.call(panel("dialogue").querySelectorAll(".turn"), function (row) {
      return { role: row.querySelector("[data-role]").value, content: row.querySelector("[data-content]").value };
    });
  }

  // ------------------------------------------------------------ form <-> JSON
  function typed(element) {
    var type = element.getAttribute("data-type") || "text";
    if (type === "bool") return element.checked;
    var value = element.value.trim();
    if (value === "") return undefined;
    if (type === "int") return parseInt(value, 10);
    if (type === "float") return parseFloat(value);
    if (type === "list") return value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
    return element.value;
  }
  function collect(name) {
    var box = panel(name), input = {}, params = {};
    box.querySelectorAll("[data-in]").forEach(function (el) {
      var value = typed(el);
      if (value !== undefined) input[el.getAttribute("data-in")] = value;
    });
    box.querySelectorAll("[data-param]").forEach(function (el) {
      var value = typed(el);
      if (value === undefined || (value === false && el.type === "checkbox")) return;
      params[el.getAttribute("data-param")] = value;
      var mirror = el.getAttribute("data-mirror");
      if (mirror) params[mirror] = value;
    });
    if (name === "dialogue") input.messages = turns();
    return { input: input, params: params };
  }
  function fill(name, input) {
    var box = panel(name);
    box.querySelectorAll("[data-in]").forEach(function (el) {
      var value = input ? input[el.getAttribute("data-in")] : undefined;
      if (value === undefined) return;
      el.value = Array.isArray(value) ? value.join(", ") : value;
    });
    if (name === "dialogue") {
      box.querySelector("[data-turns]").innerHTML = "";
      ((input && input.messages) || [{ role: "user", content: "" }]).forEach(function (m) { addTurn(m.role, m.content); });
    }
  }

  // ------------------------------------------------------------ view code
  function origin() { return window.location.origin; }
  var modelSelect = form.querySelector("[data-model]");
  function chosenModel() { return modelSelect ? modelSelect.value : ""; }
  function showModels(name) {  // only the models that serve this capability; its default first
    if (!modelSelect) return;
    var first = null;
    Array.prototype.forEach.call(modelSelect.options, function (option) {
      var fits = option.getAttribute("data-for") === name;
      option.hidden = !fits;
      option.disabled = !fits;
      if (fits && first === null) first = option;
    });
    var selected = modelSelect.options[modelSelect.selectedIndex];
    if (first && (!selected || selected.disabled)) modelSelect.value = first.value;
  }
  function codeFor(name) {
    var body = collect(name);
    var payload = { capability: name, input: body.input };
    if (chosenModel()) payload.model = chosenModel();
    if (Object.keys(body.params).length) payload.params = body.params;
    var url = origin() + "/api/v1/jobs?wait=30";
    if (name === "image_captioning") {
      payload.input = { image: "<base64 image>" };
      if (codeLanguage === "curl") {
        return 'IMAGE=$(base64 -w0 photo.jpg)\ncurl -s "' + url + '" \\\n  -H "Authorization: Bearer $ALLIANCE_API_KEY" \\\n' +
          '  -H "Content-Type: application/json" \\\n  -d "{\\"capability\\": \\"image_captioning\\", \\"input\\": {\\"image\\": \\"$IMAGE\\"}}"';
      }
      return "import base64, os\nimport requests\n\nwith open(\"photo.jpg\", \"rb\") as f:\n    image = base64.b64encode(f.read()).decode()\n" +
        "response = requests.post(\n    \"" + url + "\",\n    headers={\"Authorization\": f\"Bearer {os.environ['ALLIANCE_API_KEY']}\"},\n" +
        "    json={\"capability\": \"image_captioning\", \"input\": {\"image\": image}},\n    timeout=60,\n)\nprint(response.json()[\"output\"])";
    }
    var json = JSON.stringify(payload, null, 2);
    if (codeLanguage === "curl") {
      return 'curl -s "' + url + '" \\\n  -H "Authorization: Bearer $ALLIANCE_API_KEY" \\\n  -H "Content-Type: application/json" \\\n' +
        "  -d '" + json.replace(/'/g, "'\\''") + "'";
    }
    var py = json.replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None");
    return "import os\nimport requests\n\nresponse = requests.post(\n    \"" + url + "\",\n" +
      "    headers={\"Authorization\": f\"Bearer {os.environ['ALLIANCE_API_KEY']}\"},\n" +
      "    json=" + py.replace(/\n/g, "\n    ") + ",\n    timeout=60,\n)\nresponse.raise_for_status()\nprint(response.json()[\"output\"])";
  }
  function refreshCode() { codeBox.textContent = codeFor(current()); }

  // ------------------------------------------------------------ switching capability
  function show(name) {
    catalogue.forEach(function (c) {
      var box = panel(c.name), active = c.name === name;
      box.hidden = !active;
      box.querySelectorAll("input, select, textarea, button").forEach(function (el) { el.disabled = !active; });
      form.querySelector('[data-description="' + c.name + '"]').hidden = !active;
    });
    showModels(name);
    refreshCode();
  }

  // ------------------------------------------------------------ results
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fileUrl(id) { return form.getAttribute("data-file-url").replace("FILE_ID", encodeURIComponent(id)); }
  function scores(map) {
    var box = el("div", { "class": "stack" });
    Object.keys(map).sort(function (a, b) { return map[b] - map[a]; }).forEach(function (label) {
      var row = el("div", { "class": "score-row" });
      row.appendChild(el("span", {}, label));
      var meter = el("div", { "class": "meter" });
      var fill = el("span");
      fill.style.width = Math.round(map[label] * 100) + "%";
      meter.appendChild(fill);
      row.appendChild(meter);
      row.appendChild(el("span", { "class": "small muted" }, (map[label] * 100).toFixed(1) + "%"));
      box.appendChild(row);
    });
    return box;
  }
  function render(job) {
    resultBox.innerHTML = "";
    var out = job.output || {};
    var box = el("div", { "class": "stack" });
    switch (job.capability) {
      case "question_answering":
        box.appendChild(el("p", { "class": "chat-bubble" }, out.answer));
        if (out.score !== undefined) box.appendChild(el("p", { "class": "small muted" }, t("score", { score: Number(out.score).toFixed(3) })));
        break;
      case "text_classification":
        box.appendChild(el("p", {}, t("label"))).appendChild(el("strong", { "data-testid": "label" }, out.label));
        if (out.scores) box.appendChild(scores(out.scores));
        break;
      case "summarization":
        box.appendChild(el("p", { "class": "chat-bubble" }, out.summary));
        if (out.method) box.appendChild(el("p", { "class": "small muted" }, t("method", { method: out.method })));
        break;
      case "dialogue":
        box.appendChild(el("p", { "class": "chat-bubble" }, out.message && out.message.content));
        break;
      case "text_generation":
        box.appendChild(el("p", { "class": "chat-bubble" }, out.text));
        break;
      case "keyword_extraction":
        var list = el("div", { "data-testid": "keywords" });
        (out.keywords || []).forEach(function (k) {
          list.appendChild(el("span", { "class": "tag", title: t("keyword_score", { score: Number(k.score).toFixed(3) }) }, k.keyword));
        });
        box.appendChild(list);
        break;
      case "image_generation":
        if (out.image) {
          box.appendChild(el("img", { src: fileUrl(out.image.file_id), alt: t("generated", { prompt: job.input.prompt || "" }),
            "class": "result-image", width: out.image.width, height: out.image.height, "data-testid": "result-image" }));
        }
        break;
      case "image_captioning":
        box.appendChild(el("p", { "class": "chat-bubble" }, out.caption));
        if (out.labels) {
          var tags = el("div");
          out.labels.forEach(function (l) { tags.appendChild(el("span", { "class": "tag" }, l.label || l)); });
          box.appendChild(tags);
        }
        break;
    }
    resultBox.appendChild(box);
  }
  function setStatus(text, busy) {
    statusBox.innerHTML = "";
    if (busy) statusBox.appendChild(el("span", { "class": "spinner", "aria-hidden": "true" }));
    statusBox.appendChild(el("span", {}, text));
  }
  function showJob(job) {
    rawBox.hidden = false;
    rawBox.querySelector("[data-raw-json]").textContent = JSON.stringify(job, null, 2);
    var link = form.getAttribute("data-jobs-url").replace("JOB_ID", job.id);
    if (job.status === "succeeded") {
      setStatus(t(job.usage.units === 1 ? "succeeded_unit" : "succeeded_units", { units: job.usage.units }), false);
      statusBox.appendChild(document.createTextNode(" · "));
      statusBox.appendChild(el("a", { href: link }, t("job_details")));
      render(job);
    } else if (job.status === "failed" || job.status === "canceled") {
      setStatus(t("job_ended", { status: statusText(job.status) }), false);
      resultBox.innerHTML = "";
      resultBox.appendChild(el("p", { "class": "notice notice-error", role: "alert" },
        (job.error && (job.error.message || job.error.code)) || t("no_output")));
    } else {
      setStatus(t("job_state", { status: statusText(job.status) }), true);
    }
  }
  function showError(body, status) {
    var error = (body && body.error) || { message: t("request_failed", { status: status }) };
    setStatus(t("not_run"), false);
    resultBox.innerHTML = "";
    resultBox.appendChild(el("p", { "class": "notice notice-error", role: "alert" },
      error.message + (error.param ? " (" + error.param + ")" : "")));
  }
  function poll(job) {
    var delay = 400;
    var url = form.getAttribute("data-poll-url").replace("JOB_ID", job.id);
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, status: r.status, body: b }; }); })
        .then(function (r) {
          if (!r.ok) { showError(r.body, r.status); finish(); return; }
          showJob(r.body);
          if (["succeeded", "failed", "canceled"].indexOf(r.body.status) >= 0) { finish(); return; }
          delay = Math.min(delay * 1.4, 2500);
          polling = setTimeout(tick, delay);
        })
        .catch(function () { polling = setTimeout(tick, 2500); });
    }
    polling = setTimeout(tick, delay);
  }
  function finish() { if (runButton) runButton.disabled = false; }

  // Text capabilities: the job's events (EventSource, same origin); the text grows as tokens arrive.
  var STREAMED = ["text_generation", "dialogue"];
  var source = null;
  function follow(job) {
    if (STREAMED.indexOf(job.capability) < 0 || !window.EventSource) { poll(job); return; }
    var url = form.getAttribute("data-events-url").replace("JOB_ID", job.id);
    var bubble = null, text = "", ended = false;
    source = new EventSource(url, { withCredentials: true });
    source.addEventListener("status", function (event) {
      var status = JSON.parse(event.data).status;
      if (status === "queued" || status === "running") setStatus(t("job_state", { status: statusText(status) }), true);
    });
    source.addEventListener("token", function (event) {
      var piece = JSON.parse(event.data);
      if (piece.choice !== 0) return;
      if (!bubble) {
        resultBox.innerHTML = "";
        bubble = el("p", { "class": "chat-bubble", "data-testid": "streamed-text", "aria-live": "polite" });
        resultBox.appendChild(bubble);
        setStatus(t("generating"), true);
      }
      text += piece.text;
      bubble.textContent = text;
    });
    source.addEventListener("job", function (event) {
      ended = true;
      source.close();
      showJob(JSON.parse(event.data));
      finish();
    });
    source.onerror = function () {  // the stream broke before the job event: poll for the result instead
      source.close();
      if (!ended) poll(job);
    };
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!runButton) return;
    clearTimeout(polling);
    if (source) source.close();
    var name = current();
    var body = collect(name);
    var data = new FormData();
    data.append("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    data.append("capability", name);
    data.append("input", JSON.stringify(body.input));
    data.append("params", JSON.stringify(body.params));
    if (chosenModel()) data.append("model", chosenModel());
    var file = panel(name).querySelector("[data-image]");
    if (file && file.files.length) data.append("image", file.files[0]);
    else if (name === "image_captioning") { showError({ error: { message: t("choose_image"), param: "image" } }); return; }
    runButton.disabled = true;
    resultBox.innerHTML = "";
    setStatus(t("submitting"), true);
    fetch(form.action, { method: "POST", body: data, credentials: "same-origin", headers: { Accept: "application/json",
      "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value } })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, status: r.status, body: b }; },
        function () { return { ok: false, status: r.status, body: null }; }); })
      .then(function (r) {
        if (!r.ok) { showError(r.body, r.status); finish(); return; }
        showJob(r.body);
        if (["succeeded", "failed", "canceled"].indexOf(r.body.status) >= 0) finish(); else follow(r.body);
      })
      .catch(function () { showError(null, 0); finish(); });
  });

  form.addEventListener("change", function (event) {
    if (event.target.name === "capability") show(current());
    if (event.target.matches("[data-image]")) {
      var preview = panel("image_captioning").querySelector("[data-image-preview]");
      var chosen = event.target.files[0];
      preview.hidden = !chosen;
      if (chosen) preview.src = URL.createObjectURL(chosen);
    }
    refreshCode();
  });
  form.addEventListener("input", refreshCode);
  form.addEventListener("click", function (event) {
    if (event.target.matches("[data-add-turn]")) { addTurn("user", "").querySelector("textarea").focus(); refreshCode(); }
    if (event.target.matches("[data-remove-turn]")) {
      if (turns().length > 1) event.target.closest(".turn").remove();
      refreshCode();
    }
    if (event.target.matches("[data-reset]")) { fill(current(), examples[current()]); refreshCode(); }
    var tab = event.target.closest("[data-code-tab]");
    if (tab) {
      codeLanguage = tab.getAttribute("data-code-tab");
      form.querySelectorAll("[data-code-tab]").forEach(function (t) { t.setAttribute("aria-selected", String(t === tab)); });
      refreshCode();
    }
  });

  catalogue.forEach(function (c) { fill(c.name, c.name === preset.capability ? preset.input : c.example); });
  show(preset.capability);
})();
