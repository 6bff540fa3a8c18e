// The hub console's one script: the live tail of the deliveries log, copy buttons, and forms
// that submit once. Everything it shows is set as text (textContent), never as HTML. The URLs
// it uses come from the page (data-tail, data-deliveries), which has them from the console's
// one table of URLs.
"use strict";

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  return td;
}

function row(r, deliveries) {
  const tr = document.createElement("tr");
  tr.className = "fresh";
  const id = document.createElement("td");
  const a = document.createElement("a");
  a.href = deliveries + "/" + encodeURIComponent(r.id);
  a.textContent = String(r.id);
  id.appendChild(a);
  tr.appendChild(id);
  tr.appendChild(cell(r.received));
  tr.appendChild(cell(r.tenant));
  tr.appendChild(cell(r.connector));
  tr.appendChild(cell(r.route));
  tr.appendChild(cell(r.event));
  const ident = cell(r.identity);
  ident.className = "ident";
  tr.appendChild(ident);
  const state = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = "badge " + String(r.state).replace(/[^a-z]/g, "");
  badge.textContent = r.state;
  state.appendChild(badge);
  tr.appendChild(state);
  tr.appendChild(cell(""));
  return tr;
}

function liveTail() {
  const box = document.getElementById("live");
  const rows = document.getElementById("log-rows");
  const status = document.getElementById("live-state");
  if (!box || !rows) return;
  let source = null;
  let top = Number(box.dataset.top || 0);
  const stop = () => { if (source) { source.close(); source = null; } status.textContent = ""; };
  const start = () => {
    const filters = box.dataset.filters || "";
    const url = box.dataset.tail + "?" + (filters ? filters + "&" : "") + "after=" + top;
    source = new EventSource(url);
    status.textContent = "following…";
    source.addEventListener("rows", (e) => {
      const list = JSON.parse(e.data);
      const empty = rows.querySelector("tr.empty");
      if (empty) empty.remove();
      for (const r of list) {
        rows.insertBefore(row(r, box.dataset.deliveries), rows.firstChild);
        top = Math.max(top, r.id);
      }
      status.textContent = "following… last " + top;
    });
    source.onerror = () => { status.textContent = "reconnecting…"; };
  };
  box.addEventListener("change", () => (box.checked ? start() : stop()));
  if (new URLSearchParams(location.search).get("live") === "1") { box.checked = true; start(); }
}

function copyButtons() {
  for (const b of document.querySelectorAll("button.copy")) {
    b.addEventListener("click", async () => {
      const from = document.getElementById(b.dataset.copy);
      if (!from) return;
      try { await navigator.clipboard.writeText(from.textContent); b.textContent = "Copied"; }
      catch (_) { b.textContent = "Select the text to copy it"; }
    });
  }
}

function submitOnce() {
  for (const f of document.querySelectorAll("form.once")) {
    f.addEventListener("submit", () => {
      for (const b of f.querySelectorAll("button")) b.disabled = true;
    });
  }
}

document.addEventListener("DOMContentLoaded", () => { liveTail(); copyButtons(); submitOnce(); });
