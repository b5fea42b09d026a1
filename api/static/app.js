// Question page: POST /ask and show the answers with their sources.
// All text from the server goes through textContent / createTextNode: never innerHTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("ask-form");
  const input = $("question");
  const button = $("ask-button");
  const keyRow = $("key-row");
  const keyInput = $("api-key");
  const statusEl = $("status");
  const results = $("results");
  const answersEl = $("answers");
  const noAnswer = $("no-answer");
  const passagesBox = $("passages-box");
  const passagesSummary = $("passages-summary");
  const passagesEl = $("passages");
  const timing = $("timing");

  const MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
    "septembre", "octobre", "novembre", "décembre"];
  const KEY_STORAGE = "qa-search-key";

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // "2017-10-27" -> "27 octobre 2017", "2017-10" -> "octobre 2017", "2017" -> "2017"
  function frenchDate(iso) {
    if (!iso) return "";
    const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?/.exec(String(iso));
    if (!m) return String(iso);
    const month = m[2] ? MONTHS[Number(m[2]) - 1] : null;
    if (!month) return m[1];
    if (!m[3]) return month + " " + m[1];
    const day = Number(m[3]);
    return (day === 1 ? "1er" : String(day)) + " " + month + " " + m[1];
  }

  function safeUrl(url) {
    if (!url) return null;
    try {
      const u = new URL(url, window.location.href);
      return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  function percent(score) {
    const n = Number(score);
    return Number.isFinite(n) ? Math.round(Math.max(0, Math.min(1, n)) * 100) + " %" : "";
  }

  function setStatus(text, isError) {
    statusEl.textContent = text || "";
    statusEl.classList.toggle("error", Boolean(isError));
  }

  // Where is the answer inside its context? The API gives the context's own offset in the
  // document, so the answer is context[start - context_start, end - context_start).
  function locate(answer) {
    const ctx = answer.context || "";
    const s = answer.start - answer.context_start;
    const e = answer.end - answer.context_start;
    if (!Number.isInteger(s) || s < 0 || e > ctx.length || ctx.slice(s, e) !== answer.text) return null;
    return { text: ctx, start: s, end: e };
  }

  // Trim a long context to the sentence(s) around [start, end).
  function sentenceAround(text, start, end) {
    const MAX = 400;
    if (text.length <= MAX) return { text: text, start: start, end: end };
    let a = start;
    while (a > 0 && !/[.!?\n]/.test(text[a - 1])) a--;
    let b = end;
    while (b < text.length && !/[.!?\n]/.test(text[b])) b++;
    if (b < text.length) b++;
    if (start - a > MAX / 2) a = start - MAX / 2;
    if (b - end > MAX / 2) b = end + MAX / 2;
    const prefix = a > 0 ? "… " : "";
    const suffix = b < text.length ? " …" : "";
    const piece = text.slice(a, b);
    const lead = piece.length - piece.trimStart().length;
    return {
      text: prefix + piece.trim() + suffix,
      start: prefix.length + start - a - lead,
      end: prefix.length + end - a - lead,
    };
  }

  function highlighted(answer) {
    const p = el("p", "answer-context");
    let loc = locate(answer);
    if (loc) loc = sentenceAround(loc.text, loc.start, loc.end);
    if (!loc) {
      p.appendChild(el("mark", null, answer.text));
      if (answer.context) p.appendChild(document.createTextNode(" — " + answer.context));
      return p;
    }
    p.appendChild(document.createTextNode(loc.text.slice(0, loc.start)));
    p.appendChild(el("mark", null, loc.text.slice(loc.start, loc.end)));
    p.appendChild(document.createTextNode(loc.text.slice(loc.end)));
    return p;
  }

  function source(item, withScore) {
    const div = el("div", "source");
    const href = safeUrl(item.url);
    const title = item.title || item.document_id;
    if (href) {
      const a = el("a", "title", title);
      a.href = href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      div.appendChild(a);
    } else {
      div.appendChild(el("span", "title", title));
    }
    if (item.published) {
      const t = el("time", "date", frenchDate(item.published));
      t.dateTime = String(item.published);
      div.appendChild(t);
    }
    div.appendChild(el("span", "doc-id", "document " + item.document_id));
    if (withScore) div.appendChild(el("span", "score", "confiance " + percent(item.score)));
    return div;
  }

  function render(data) {
    answersEl.replaceChildren();
    passagesEl.replaceChildren();
    const passages = Array.isArray(data.passages) ? data.passages : [];
    const answers = Array.isArray(data.answers) ? data.answers : [];

    noAnswer.hidden = answers.length > 0;
    answers.forEach((a) => {
      const li = el("li", "answer");
      li.appendChild(el("p", "answer-text", a.text));
      li.appendChild(highlighted(a));
      li.appendChild(source(a, true));
      answersEl.appendChild(li);
    });

    passagesSummary.textContent = "Passages consultés (" + passages.length + ")";
    passagesBox.hidden = passages.length === 0;
    passagesBox.open = answers.length === 0 && passages.length > 0;
    passages.forEach((p) => {
      const li = el("li", "passage");
      const head = el("div", "passage-head");
      head.appendChild(source(p, false));
      li.appendChild(head);
      li.appendChild(el("p", "passage-text", String(p.text || "").replace(/\n\s*\n+/g, "\n").trim()));
      passagesEl.appendChild(li);
    });

    timing.textContent = Number.isFinite(Number(data.took_ms))
      ? "Réponse calculée en " + Math.round(Number(data.took_ms)) + " ms" : "";
    results.hidden = false;
  }

  function errorMessage(status, body) {
    if (status === 401 || status === 403) return "Accès refusé : une clé d’accès valide est nécessaire.";
    if (status === 413) return "La question est trop longue.";
    if (status === 422 && body && Array.isArray(body.detail) && body.detail.length) {
      const d = body.detail[0];
      const field = Array.isArray(d.loc) ? d.loc[d.loc.length - 1] : "";
      if (field === "question") return "Question invalide : elle doit contenir entre 1 et 1 000 caractères.";
      return "Requête invalide (" + field + ") : " + d.msg;
    }
    if (status >= 500) {
      const rid = body && body.request_id ? " (référence " + body.request_id + ")" : "";
      return "Erreur interne du service" + rid + ". Réessayez plus tard.";
    }
    return "Erreur " + status + (body && typeof body.detail === "string" ? " : " + body.detail : "");
  }

  async function ask(question) {
    button.disabled = true;
    setStatus("Recherche en cours…");
    results.setAttribute("aria-busy", "true");
    const headers = { "Content-Type": "application/json" };
    const key = keyInput.value.trim() || sessionStorage.getItem(KEY_STORAGE) || "";
    if (key) headers.Authorization = "Bearer " + key;
    try {
      const resp = await fetch("/ask", { method: "POST", headers: headers, body: JSON.stringify({ question: question }) });
      let body = null;
      try { body = await resp.json(); } catch (e) { body = null; }
      if (!resp.ok) {
        if (resp.status === 401 || resp.status === 403) {
          keyRow.hidden = false;
          sessionStorage.removeItem(KEY_STORAGE);
        }
        setStatus(errorMessage(resp.status, body), true);
        return;
      }
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      render(body);
      const n = body.answers.length;
      setStatus(n ? (n === 1 ? "1 réponse" : n + " réponses") : "Aucune réponse trouvée");
    } catch (e) {
      setStatus("Le service est injoignable. Vérifiez votre connexion et réessayez.", true);
    } finally {
      button.disabled = false;
      results.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = input.value.trim();
    if (!q) {
      setStatus("Saisissez une question.", true);
      input.focus();
      return;
    }
    const url = new URL(window.location.href);
    url.searchParams.set("q", q);
    window.history.replaceState(null, "", url);
    ask(q);
  });

  // /?q=... asks directly (shareable links)
  const initial = new URLSearchParams(window.location.search).get("q");
  if (initial && initial.trim()) {
    input.value = initial;
    ask(initial.trim());
  }
})();
