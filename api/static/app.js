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
  const noAnswerHint = $("no-answer-hint");
  const passagesBox = $("passages-box");
  const passagesSummary = $("passages-summary");
  const passagesEl = $("passages");
  const timing = $("timing");
  const PAGE_TITLE = document.title;

  const MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
    "septembre", "octobre", "novembre", "décembre"];
  const KEY_STORAGE = "qa-search-key";
  const MAX_CHARS = 1000; // the API's limit on a question
  const TIMEOUT_MS = 90000; // a server that does not answer: say so, let the user retry
  let inFlight = null; // the AbortController of the question being answered
  let inFlightQuestion = null; // and that question: asked again meanwhile (a double click), it is not sent twice

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

  // A refused question: the field says so and is described by the message (screen readers read
  // it on the field); the next question asked clears it.
  function markQuestion(problem) {
    if (problem) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", "status question-hint");
    } else {
      input.removeAttribute("aria-invalid");
      input.setAttribute("aria-describedby", "question-hint");
    }
  }

  // Where is the answer inside its context? The API gives the context's own offset in the
  // document, so the answer is context[start - context_start, end - context_start).
  // API offsets count Unicode code points (Python's); JavaScript strings count UTF-16 units, two
  // for an emoji, so the offsets are converted before slicing.
  function locate(answer) {
    const ctx = answer.context || "";
    const points = Array.from(ctx);
    const s = answer.start - answer.context_start;
    const e = answer.end - answer.context_start;
    if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e < s || e > points.length) return null;
    const u = points.slice(0, s).join("").length;
    const v = u + points.slice(s, e).join("").length;
    if (ctx.slice(u, v) !== answer.text) return null;
    return { text: ctx, start: u, end: v };
  }

  function isLowSurrogate(text, i) {
    const c = text.charCodeAt(i);
    return c >= 0xdc00 && c <= 0xdfff;
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
    if (a > 0 && isLowSurrogate(text, a)) a--; // never cut an emoji in two
    if (b < text.length && isLowSurrogate(text, b)) b++;
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

  // The service cuts a very long sentence around the answer, and passages are windows of a text:
  // say so with "…" where such a piece does not start or end a sentence.
  function cutMarks(text) {
    const head = /^[\p{Ll}]/u.test(text) ? "… " : "";
    const tail = /[.!?…»"”)\]]$/u.test(text) ? "" : " …";
    return { head: head, tail: tail };
  }

  function highlighted(answer) {
    const p = el("p", "answer-context");
    let loc = locate(answer);
    if (loc && loc.text.length <= 400) {
      const m = cutMarks(loc.text);
      loc = { text: m.head + loc.text + m.tail, start: loc.start + m.head.length, end: loc.end + m.head.length };
    }
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
      // said to screen readers too: Back in the new tab does not lead back to the answers
      a.appendChild(el("span", "visually-hidden", " (nouvel onglet)"));
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

  // The same answer found in other passages (merged by the service): one line per other document,
  // the answer's own citation and repeats within one document left out.
  function otherCitations(answer) {
    const seen = new Set([String(answer.document_id)]);
    const out = [];
    (Array.isArray(answer.citations) ? answer.citations : []).forEach((c) => {
      if (!c || seen.has(String(c.document_id))) return;
      seen.add(String(c.document_id));
      out.push(c);
    });
    return out;
  }

  function clearResults() {
    results.hidden = true;
    answersEl.replaceChildren();
    passagesEl.replaceChildren();
  }

  function render(data, question) {
    results.dataset.question = question;
    answersEl.replaceChildren();
    passagesEl.replaceChildren();
    const passages = Array.isArray(data.passages) ? data.passages : [];
    const answers = Array.isArray(data.answers) ? data.answers : [];

    noAnswer.hidden = answers.length > 0;
    noAnswerHint.textContent = passages.length
      ? "Les articles indexés ne semblent pas contenir la réponse. Les passages les plus proches sont listés ci-dessous."
      : "Aucun passage ne correspond à la question : l’index est peut-être vide.";
    answers.forEach((a) => {
      const li = el("li", "answer");
      li.appendChild(el("h3", "answer-text", a.text)); // a heading: screen readers jump from answer to answer
      li.appendChild(highlighted(a));
      li.appendChild(source(a, true));
      const others = otherCitations(a);
      if (others.length) {
        const also = el("div", "also-cited");
        also.appendChild(el("span", "also-label", others.length === 1 ? "Également dans :" : "Également dans (" + others.length + ") :"));
        others.forEach((c) => also.appendChild(source(c, false)));
        li.appendChild(also);
      }
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
      const text = String(p.text || "").replace(/\n\s*\n+/g, "\n").trim();
      const m = cutMarks(text);
      li.appendChild(el("p", "passage-text", m.head + text + m.tail));
      passagesEl.appendChild(li);
    });

    timing.textContent = Number.isFinite(Number(data.took_ms))
      ? "Réponse calculée en " + Math.round(Number(data.took_ms)) + " ms" : "";
    results.hidden = false;
  }

  function errorMessage(status, body) {
    if (status === 401) return "Accès refusé : une clé d’accès est nécessaire. Saisissez-la ci-dessous.";
    if (status === 403) return "Accès refusé : cette clé d’accès n’est pas valide. Vérifiez-la ci-dessous.";
    if (status === 503) return "Le service est occupé ou en cours de démarrage. Réessayez dans un instant.";
    if (status === 413) return "La question est trop longue.";
    if (status === 408) return "La question n’est pas parvenue au service à temps. Réessayez.";
    if (status === 429) return "Trop de questions en peu de temps. Patientez un instant, puis réessayez.";
    if (status === 422 && body && Array.isArray(body.detail) && body.detail.length) {
      const d = body.detail[0];
      const field = Array.isArray(d.loc) ? d.loc[d.loc.length - 1] : "";
      if (field === "question") {
        return /letter or digit/.test(String(d.msg))
          ? "Question invalide : elle doit contenir au moins une lettre ou un chiffre."
          : "Question invalide : elle doit contenir entre 1 et 1 000 caractères.";
      }
      return "Requête invalide (" + field + ") : " + d.msg;
    }
    if (status >= 500) {
      const rid = body && body.request_id ? " (référence " + body.request_id + ")" : "";
      return "Erreur interne du service" + rid + ". Réessayez plus tard.";
    }
    // the service's own words (English) only as a detail, after a French sentence
    const detail = body && typeof body.detail === "string" ? " : " + body.detail : "";
    return "Le service n’a pas pu répondre (erreur " + status + detail + "). Réessayez plus tard.";
  }

  function questionRefused(body) {
    const d = body && Array.isArray(body.detail) ? body.detail[0] : null;
    return Boolean(d && Array.isArray(d.loc) && d.loc[d.loc.length - 1] === "question");
  }

  // A newer question replaces the one being answered (its answer would no longer match the box);
  // errors and time-outs clear the previous answers so that they are never shown under another question.
  function cancel() {
    if (!inFlight) return;
    const c = inFlight;
    inFlight = null; // first: the aborted request sees it is no longer the current one
    c.abort();
    results.removeAttribute("aria-busy");
  }

  async function ask(question) {
    if (inFlight && inFlightQuestion === question) return; // already on its way
    cancel();
    clearResults(); // the previous question's answers never show under this one
    markQuestion(false);
    // each question is a history entry: its title tells them apart (history menu, tabs, screen readers)
    document.title = question + " — " + PAGE_TITLE;
    const controller = new AbortController();
    inFlight = controller;
    inFlightQuestion = question;
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; controller.abort(); }, TIMEOUT_MS);
    setStatus("Recherche en cours…");
    results.setAttribute("aria-busy", "true");
    const headers = { "Content-Type": "application/json" };
    const key = keyInput.value.trim() || sessionStorage.getItem(KEY_STORAGE) || "";
    if (key) headers.Authorization = "Bearer " + key;
    try {
      const resp = await fetch("ask", { method: "POST", headers: headers, body: JSON.stringify({ question: question }), signal: controller.signal });
      let body = null;
      try { body = await resp.json(); } catch (e) { body = null; }
      if (controller !== inFlight) return; // a newer question was asked meanwhile
      if (!resp.ok) {
        clearResults();
        setStatus(errorMessage(resp.status, body), true);
        if (resp.status === 413 || (resp.status === 422 && questionRefused(body))) {
          markQuestion(true);
          input.focus(); // the field to correct
        }
        if (resp.status === 401 || resp.status === 403) {
          keyRow.hidden = false;
          sessionStorage.removeItem(KEY_STORAGE);
          keyInput.focus(); // where the user must act, announced with the status it describes
        }
        return;
      }
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      render(body, question);
      const n = body.answers.length;
      setStatus(n ? (n === 1 ? "1 réponse" : n + " réponses") : "Aucune réponse trouvée");
    } catch (e) {
      if (controller !== inFlight) return;
      clearResults();
      setStatus(timedOut
        ? "Le service ne répond pas (plus de " + TIMEOUT_MS / 1000 + " s). Réessayez plus tard."
        : "Le service est injoignable. Vérifiez votre connexion et réessayez.", true);
    } finally {
      clearTimeout(timer);
      if (controller === inFlight) {
        inFlight = null;
        results.removeAttribute("aria-busy");
      }
    }
  }

  // the question as it will be asked, or an error message (checked here so that nothing is cut silently)
  function check(q) {
    if (!q) return "Saisissez une question.";
    const chars = Array.from(q).length; // code points, as the API counts them (an emoji is one)
    if (chars > MAX_CHARS) return "La question est trop longue : " + MAX_CHARS.toLocaleString("fr-FR") + " caractères au plus (" + chars.toLocaleString("fr-FR") + " saisis).";
    return null;
  }

  function askFromUrl() {
    const q = (new URLSearchParams(window.location.search).get("q") || "").trim();
    input.value = q;
    if (!q) { // back to the page without a question: nothing of an earlier one stays
      cancel();
      clearResults();
      setStatus("");
      markQuestion(false);
      document.title = PAGE_TITLE;
      return;
    }
    const problem = check(q);
    if (problem) {
      clearResults();
      setStatus(problem, true);
      markQuestion(true);
      return;
    }
    ask(q);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = input.value.trim();
    const problem = check(q);
    if (problem) {
      cancel();
      clearResults();
      setStatus(problem, true);
      markQuestion(true);
      input.focus();
      return;
    }
    // each question is a history entry: Back returns to the previous one
    const url = new URL(window.location.href);
    if (url.searchParams.get("q") !== q) {
      url.searchParams.set("q", q);
      window.history.pushState(null, "", url);
    }
    ask(q);
  });

  window.addEventListener("popstate", askFromUrl);

  // /?q=... asks directly (shareable links)
  askFromUrl();
})();
