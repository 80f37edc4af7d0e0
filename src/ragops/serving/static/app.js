// The search page: POST /search and /ask with the same query; citations in the answer link to its sources.
// Each result can be judged relevant / not relevant (POST /judge): the evaluation set for your own documents.
// Token (when the server has RAGOPS_API_TOKEN): from ?token=... (then kept) or typed in, kept in localStorage.
"use strict";
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "ragops.token";
let judging = true;  // /health says whether the server records judgments (serve.judgments_path)

(function takeTokenFromUrl() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token) {
    localStorage.setItem(TOKEN_KEY, token);
    url.searchParams.delete("token");  // not left in the address bar or the history
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
})();

function headers() {
  const h = { "Content-Type": "application/json" };
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function api(path, body) {
  const res = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body) });
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (res.status === 401) $("token-box").hidden = false;
  if (!res.ok) {
    const detail = data && data.detail ? data.detail : res.statusText;
    const rid = data && data.request_id ? ` (request ${data.request_id})` : "";
    throw new Error(`${path}: ${res.status} ${detail}${rid}`);
  }
  return data;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Text with inline [doc_id] citations -> text nodes and links to the answer's sources.
function appendCited(parent, text, known) {
  const re = /\[([^\[\]\s]+)\]/g;
  let last = 0, m;
  while ((m = re.exec(text)) !== null) {
    parent.append(text.slice(last, m.index));
    if (known.has(m[1])) {
      const a = el("a", "cite", `[${m[1]}]`);
      a.href = `#src-${m[1]}`;
      a.title = known.get(m[1]);
      parent.append(a);
    } else {
      parent.append(m[0]);
    }
    last = re.lastIndex;
  }
  parent.append(text.slice(last));
}

function renderAnswer(ans, results) {
  const titles = new Map(ans.hits.map((h) => [String(h.doc_id), h.title || String(h.doc_id)]));
  const box = $("answer-text");
  box.replaceChildren();
  // Mark each claim inside the answer text (unsupported ones visibly), citations stay links.
  let pos = 0;
  for (const claim of ans.claims) {
    const at = ans.text.indexOf(claim.text, pos);
    if (at < 0) continue;
    appendCited(box, ans.text.slice(pos, at), titles);
    const span = el("span", "claim " + (claim.supported ? "supported" : "unsupported"));
    span.title = `support ${claim.score.toFixed(2)}`;
    appendCited(span, claim.text, titles);
    box.append(span);
    if (!claim.supported) box.append(el("span", "flag", "unsupported"));
    pos = at + claim.text.length;
  }
  appendCited(box, ans.text.slice(pos), titles);

  const claims = $("claims");
  claims.replaceChildren();
  for (const claim of ans.claims) {
    const li = el("li", claim.supported ? "supported" : "unsupported");
    li.append(el("span", "score", `${claim.supported ? "✓ supported" : "✗ unsupported"} (${claim.score.toFixed(2)}) `));
    appendCited(li, claim.text, titles);
    const places = Object.entries(claim.where || {});
    if (places.length) li.append(el("span", "where", ` (${places.map(([d, w]) => `${d}: ${w}`).join("; ")})`));
    claims.append(li);
  }
  if (ans.found === false) {
    $("support").textContent = `not found in the documents (relevance ${(ans.relevance ?? 0).toFixed(2)})`
      + ` · ${ans.generator} / ${ans.scorer}`;
    $("support").className = "support warn";
  } else {
    const rate = Math.round(ans.support_rate * 100);
    const unsupported = ans.claims.filter((c) => !c.supported).length;
    $("support").textContent = `${rate}% of claims supported` + (unsupported ? `, ${unsupported} unsupported` : "")
      + ` · ${ans.generator} / ${ans.scorer}`;
    $("support").className = "support " + (unsupported ? "warn" : "ok");
  }

  const cited = new Set(ans.citations.map(String));
  const sources = $("sources");
  sources.replaceChildren();
  for (const h of ans.hits) {
    const li = el("li");
    li.id = `src-${h.doc_id}`;
    li.append(el("span", "title", h.title || String(h.doc_id)));
    li.append(el("span", "meta", `${h.doc_id} · ${Number(h.score).toFixed(3)}`));
    if (cited.has(String(h.doc_id))) li.append(el("span", "cited", "cited"));
    li.append(el("p", "snippet", (h.text || "").slice(0, 300) + ((h.text || "").length > 300 ? "…" : "")));
    sources.append(li);
  }
  for (const li of results.children) {
    if (cited.has(li.dataset.docId)) li.querySelector(".title").after(el("span", "cited", "cited in the answer"));
  }
  $("answer").hidden = false;
}

function renderResults(data) {
  const list = $("results");
  list.replaceChildren();
  for (const r of data.results) {
    const li = el("li", "result");
    li.id = `doc-${r.doc_id}`;
    li.dataset.docId = r.doc_id;
    li.append(el("span", "title", r.title || r.doc_id));
    li.append(el("span", "meta", `${r.doc_id} · score ${r.score.toFixed(3)}`));
    li.append(el("p", "snippet", r.snippet));
    if (judging) li.append(judgeButtons(li, data.query, r.doc_id, data.mode));
    list.append(li);
  }
  $("took").textContent = `${data.results.length} in ${data.took_ms.toFixed(1)} ms · ${data.mode} · ${modelName(data.model)}`;
  $("results-box").hidden = false;
  return list;
}

// "relevant" / "not relevant" under a result: the pressed one stays pressed (aria-pressed), a failure says why.
function judgeButtons(li, query, docId, mode) {
  const box = el("div", "judge");
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", `judge ${docId}`);
  const note = el("span", "judge-note");
  note.setAttribute("role", "status");
  const buttons = [[true, "yes", "relevant"], [false, "no", "not relevant"]].map(([relevant, cls, label]) => {
    const b = el("button", `judge-${cls}`, label);
    b.type = "button";
    b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", async () => {
      buttons.forEach((x) => { x.disabled = true; });
      note.className = "judge-note";
      note.textContent = "saving…";
      try {
        const res = await api("/judge", { query, doc_id: docId, relevant, mode, by: "page" });
        buttons.forEach((x) => x.setAttribute("aria-pressed", String(x === b)));
        li.dataset.judged = relevant ? "relevant" : "not-relevant";
        note.textContent = `judged ${label} (${res.judgments} judgments)`;
      } catch (e) {
        note.className = "judge-note error";
        note.textContent = e.message;
      } finally {
        buttons.forEach((x) => { x.disabled = false; });
      }
    });
    return b;
  });
  box.append(...buttons, note);
  return box;
}

// The mode list is the served model's: every mode its package carries, its default (a package: the registered mode) first.
function setModes(modes, def) {
  const select = $("mode");
  const key = modes.join(",") + "|" + def;
  if (select.dataset.key === key) return;
  const chosen = select.dataset.key ? select.value : def;
  select.replaceChildren(...[def, ...modes.filter((x) => x !== def)].map((x) => {
    const o = document.createElement("option");
    o.value = x;
    o.textContent = x === def ? `${x} (default)` : x;
    return o;
  }));
  select.value = modes.includes(chosen) ? chosen : def;
  select.dataset.key = key;
}

function modelName(m) {
  return m.version === "local" ? "local build" : `${m.name} v${m.version}`;
}

async function loadHealth() {
  try {
    const h = await (await fetch("/health")).json();
    const m = h.model;
    $("model").textContent = m ? modelName(m) + (m.alias ? " @" + m.alias : "") : "loading…";
    if (m && m.degraded) $("model").textContent += " — degraded: " + m.degraded;
    if (m && m.modes) setModes(m.modes, m.default_mode);
    if (h.auth && !localStorage.getItem(TOKEN_KEY)) $("token-box").hidden = false;
    judging = h.judgments !== false;
  } catch (e) {
    $("model").textContent = "server unreachable";
  }
}

$("token-box").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token").value.trim();
  if (value) localStorage.setItem(TOKEN_KEY, value); else localStorage.removeItem(TOKEN_KEY);
  $("token-box").hidden = true;
  $("status").textContent = "token saved";
});

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = $("query").value;
  const topK = parseInt($("top-k").value, 10) || 10;
  const status = $("status");
  status.className = "";
  status.textContent = "searching…";
  $("go").disabled = true;
  $("answer").hidden = true;
  try {
    const body = { query, top_k: topK };
    if ($("mode").value) body.mode = $("mode").value;
    const data = await api("/search", body);
    const list = renderResults(data);
    status.textContent = "";
    if ($("want-answer").checked) {
      status.textContent = "writing the answer…";
      const ans = await api("/ask", { question: query, top_k: Math.min(topK, 10) });
      renderAnswer(ans, list);
      status.textContent = "";
    }
    loadHealth();
  } catch (e) {
    status.className = "error";
    status.textContent = e.message;
  } finally {
    $("go").disabled = false;
  }
});

loadHealth();
