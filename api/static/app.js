// Question page: POST /ask (with optional filters) and show the answers with their sources.
// All text from the server goes through textContent / createTextNode: never innerHTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("ask-form");
  const input = $("question");
  const keyRow = $("key-row");
  const keyInput = $("api-key");
  const statusEl = $("status");
  const errorEl = $("error");
  const results = $("results");
  const answersEl = $("answers");
  const noAnswer = $("no-answer");
  const noAnswerHint = $("no-answer-hint");
  const passagesBox = $("passages-box");
  const passagesSummary = $("passages-summary");
  const passagesEl = $("passages");
  const timing = $("timing");
  const filtersBox = $("filters");
  const filtersSummary = $("filters-summary");
  const afterEl = $("published-after");
  const beforeEl = $("published-before");
  const docEl = $("document-id");
  const docList = $("document-options");
  const docsNote = $("documents-note");
  const DOCS_HINT = docsNote.textContent;
  const sourceEl = $("source");
  const PAGE_TITLE = document.title;

  const MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
    "septembre", "octobre", "novembre", "décembre"];
  const KEY_STORAGE = "qa-search-key";
  // the API's limit on a question, filled in by the server (NaN if the page was not served by it: the API checks alone)
  const MAX_CHARS = Number.parseInt(input.dataset.maxChars, 10);
  const TIMEOUT_MS = 90000; // a server that does not answer: say so, let the user retry
  const DOCS_SHOWN = 50; // documents proposed at once; the others are found by typing
  const DOCS_DELAY_MS = 200; // the list is asked for once typing pauses this long
  const DOCS_SLOW_MS = 1000; // a list not back by then: the note says it is on its way
  const DOCS_TIMEOUT_MS = 15000; // nor by then: the note says so, the next key asks again
  // the filters: URL parameter (GET /search's names) -> field and its name in messages
  const FILTERS = {
    published_after: { el: afterEl, name: "« À partir du »" },
    published_before: { el: beforeEl, name: "« Jusqu’au »" },
    document_id: { el: docEl, name: "« Document »" },
    source: { el: sourceEl, name: "« Site »" },
  };
  // a 422's field (the last name of its loc) -> the filter it is about
  const API_FIELDS = { published_after: "published_after", published_before: "published_before", document_ids: "document_id", source: "source" };
  let inFlight = null; // the AbortController of the question being answered
  let inFlightKey = null; // and what it asks: asked again meanwhile (a double click), it is not sent twice
  // the document field: what the filter keeps is the document chosen in the list, not the text typed
  let chosenDoc = null; // { id, label }, or null
  const docLabels = new Map(); // id -> label of the documents listed so far (a link names its document by id)
  let docsShown = []; // the documents the list proposes, in its order
  let docsFor = null; // the text they were asked for (null: none yet)
  let docsTotal = 0; // and how many documents hold it
  let docsActive = -1; // the option under the keyboard's visual focus
  let docsRequest = null; // the AbortController of the list being asked for
  let docsRequestFor = null; // and the text it is for
  let docsTakeFirst = false; // Enter came before the list of what was typed: take its first document
  let docsTimer = null;
  let docsPrimed = false; // the first page is asked for on the first opening of the filters

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

  // A link only to an absolute http(s) URL: never javascript:, data: or another scheme, and never a
  // relative URL, which would point into this server.
  function safeUrl(url) {
    if (typeof url !== "string" || !url) return null;
    try {
      const u = new URL(url);
      return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  function frNumber(n) {
    return Number(n).toLocaleString("fr-FR");
  }

  function percent(score) {
    const n = Number(score);
    return Number.isFinite(n) ? Math.round(Math.max(0, Math.min(1, n)) * 100) + " %" : "";
  }

  // Progress and counts go to the polite status, errors to the alert; one clears the other, so a
  // message is announced once and an old error never stays next to new answers.
  function showStatus(text) {
    errorEl.replaceChildren();
    statusEl.textContent = text || "";
  }

  // `english`: the service's own words, read by screen readers in English
  function showError(problem) {
    statusEl.textContent = "";
    const parts = [document.createTextNode(problem.text)];
    if (problem.english) {
      const span = el("span", null, problem.english);
      span.lang = "en";
      parts.push(span, document.createTextNode(problem.after || ""));
    }
    errorEl.replaceChildren(...parts);
    markInvalid(problem.fields || []);
  }

  // Fields in error say so and are described by the alert (heard again when the user reaches them).
  // Focus is left where it is: moved to a field described by the alert, the message would be read twice.
  function markInvalid(fields) {
    fields.forEach((f) => {
      if (!("describedby" in f.dataset)) f.dataset.describedby = f.getAttribute("aria-describedby") || "";
      f.setAttribute("aria-invalid", "true");
      f.setAttribute("aria-describedby", ("error " + f.dataset.describedby).trim());
      if (filtersBox.contains(f)) filtersBox.open = true; // the field to correct is in sight
    });
  }

  function clearInvalid() {
    form.querySelectorAll("[aria-invalid]").forEach((f) => {
      f.removeAttribute("aria-invalid");
      if (f.dataset.describedby) f.setAttribute("aria-describedby", f.dataset.describedby);
      else f.removeAttribute("aria-describedby");
      delete f.dataset.describedby;
    });
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
    // a quotation of the source: the answer in the sentence it was read in
    const q = el("blockquote", "answer-context");
    const href = safeUrl(answer.url);
    if (href) q.cite = href;
    let loc = locate(answer);
    if (loc && loc.text.length <= 400) {
      const m = cutMarks(loc.text);
      loc = { text: m.head + loc.text + m.tail, start: loc.start + m.head.length, end: loc.end + m.head.length };
    }
    if (loc) loc = sentenceAround(loc.text, loc.start, loc.end);
    if (!loc) {
      q.appendChild(el("mark", null, answer.text));
      if (answer.context) q.appendChild(document.createTextNode(" — " + answer.context));
      return q;
    }
    q.appendChild(document.createTextNode(loc.text.slice(0, loc.start)));
    q.appendChild(el("mark", null, loc.text.slice(loc.start, loc.end)));
    q.appendChild(document.createTextNode(loc.text.slice(loc.end)));
    return q;
  }

  // title (a link to an http(s) URL only), date, document id; `tag` and `label` for an answer's caption
  function source(item, withScore, tag, label) {
    const div = el(tag || "div", "source");
    if (label) div.appendChild(el("span", "source-label", label));
    const href = safeUrl(item.url);
    // an untitled document is named by its id, once: « document <id> » stands for its title
    const title = item.title || "document " + item.document_id;
    const titleClass = item.title ? "title" : "title doc-id";
    if (href) {
      const a = el("a", titleClass, title);
      a.href = href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      // said to screen readers too: Back in the new tab does not lead back to the answers
      a.appendChild(el("span", "visually-hidden", " (nouvel onglet)"));
      div.appendChild(a);
    } else {
      div.appendChild(el("span", titleClass, title));
    }
    if (item.published) {
      const t = el("time", "date", frenchDate(item.published));
      t.dateTime = String(item.published);
      div.appendChild(t);
    }
    if (item.title) div.appendChild(el("span", "doc-id", "document " + item.document_id));
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

  function render(data, question, filtered) {
    results.dataset.question = question;
    answersEl.replaceChildren();
    passagesEl.replaceChildren();
    const passages = Array.isArray(data.passages) ? data.passages : [];
    const answers = Array.isArray(data.answers) ? data.answers : [];

    noAnswer.hidden = answers.length > 0;
    if (filtered) {
      noAnswerHint.textContent = passages.length
        ? "Les documents retenus par les filtres ne semblent pas contenir la réponse. Les passages les plus proches sont listés ci-dessous."
        : "Aucun passage ne correspond à la question avec ces filtres : élargissez-les ou effacez-les.";
    } else {
      noAnswerHint.textContent = passages.length
        ? "Les documents indexés ne semblent pas contenir la réponse. Les passages les plus proches sont listés ci-dessous."
        : "Aucun passage ne correspond à la question : l’index est peut-être vide.";
    }
    answers.forEach((a) => {
      const li = el("li", "answer");
      li.appendChild(el("h3", "answer-text", a.text)); // a heading: screen readers jump from answer to answer
      const quote = el("figure", "quote");
      quote.appendChild(highlighted(a));
      quote.appendChild(source(a, true, "figcaption", "Source\u00a0:"));
      li.appendChild(quote);
      const others = otherCitations(a);
      if (others.length) {
        const also = el("div", "also-cited");
        also.appendChild(el("span", "also-label", others.length === 1 ? "Également dans\u00a0:" : "Également dans (" + others.length + ")\u00a0:"));
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

  // --- errors ---------------------------------------------------------------------------------

  // Retry-After: seconds or an HTTP date; null when absent or unreadable
  function retryAfter(resp) {
    const v = (resp.headers.get("Retry-After") || "").trim();
    if (/^\d+$/.test(v)) return Number(v);
    const t = v ? Date.parse(v) : NaN;
    return Number.isFinite(t) ? Math.max(0, Math.ceil((t - Date.now()) / 1000)) : null;
  }

  function when(seconds) {
    if (seconds === null) return "dans un instant";
    if (seconds <= 1) return "dans 1 seconde";
    if (seconds < 120) return "dans " + seconds + " secondes";
    return "dans " + Math.ceil(seconds / 60) + " minutes";
  }

  // A 422: the field the service refused, named as the page names it, with the service's own words.
  function refused(body) {
    const d = body && Array.isArray(body.detail) ? body.detail[0] : null;
    const loc = d && Array.isArray(d.loc) ? d.loc.filter((p) => typeof p === "string") : [];
    const field = loc.length ? loc[loc.length - 1] : "";
    const msg = String((d && d.msg) || "").replace(/^Value error, /, "");
    if (field === "question") {
      return {
        text: /letter or digit/.test(msg)
          ? "Question invalide : elle doit contenir au moins une lettre ou un chiffre."
          : "Question invalide : elle doit contenir entre 1 et " + (Number.isInteger(MAX_CHARS) ? frNumber(MAX_CHARS) : "…") + " caractères.",
        fields: [input],
      };
    }
    const name = API_FIELDS[field];
    if (name) return { text: "Filtre " + FILTERS[name].name + " refusé par le service : ", english: msg, after: ".", fields: [FILTERS[name].el] };
    if (field === "filters") return { text: "Filtre « Date de publication » refusé par le service : ", english: msg, after: ".", fields: [afterEl, beforeEl] };
    return { text: "Requête refusée par le service" + (field ? " (champ " + field + ")" : "") + " : ", english: msg || "422", after: "." };
  }

  // status -> { text, english, after, fields }: what went wrong and what to do, in French
  function httpProblem(status, body, wait) {
    const detail = body && typeof body.detail === "string" ? body.detail : "";
    if (status === 401) return { text: "Accès refusé : une clé d’accès est nécessaire. Saisissez-la ci-dessous." };
    if (status === 403) return { text: "Accès refusé : cette clé d’accès n’est pas valide. Vérifiez-la ci-dessous." };
    if (status === 429) return { text: "Trop de questions en peu de temps (erreur 429). Patientez, puis réessayez " + when(wait) + "." };
    if (status === 503 && /^busy\b/.test(detail)) return { text: "Le service est occupé par d’autres questions (erreur 503). Réessayez " + when(wait) + "." };
    if (status === 503 && /not loaded/.test(detail)) return { text: "Le service est en cours de démarrage (erreur 503). Réessayez " + when(wait) + "." };
    // only its administrator can restore a damaged index: asking again would fail alike
    if (status === 503 && /\bindex is damaged\b/.test(detail)) return { text: "L’index du service est endommagé (erreur 503) : signalez-le à son administrateur, qui doit le restaurer." };
    // another process re-indexed with another model: only a restart of the server helps
    if (status === 503 && /\bmust be restarted\b/.test(detail)) return { text: "Le service doit être redémarré par son administrateur (erreur 503) : son index a été reconstruit avec un autre modèle." };
    if (status === 502 || status === 503) return { text: "Le service est momentanément indisponible (erreur " + status + "). Réessayez " + (wait === null ? "dans quelques instants" : when(wait)) + "." };
    if (status === 504) return { text: "Le service a mis trop de temps à répondre (erreur 504). Réessayez dans un moment." };
    if (status === 408) return { text: "La question n’est pas parvenue au service à temps. Réessayez." };
    if (status === 413) return { text: "La question est trop longue.", fields: [input] };
    if (status === 422) return refused(body);
    if (status >= 500) {
      const rid = body && body.request_id ? " (référence " + body.request_id + ")" : "";
      return { text: "Erreur interne du service" + rid + ". Réessayez plus tard." };
    }
    // the service's own words (English) only as a detail, after a French sentence
    if (detail) return { text: "Le service a refusé la question (erreur " + status + " : ", english: detail, after: ")." };
    return { text: "Le service a refusé la question (erreur " + status + ")." };
  }

  // --- filters --------------------------------------------------------------------------------

  // The filters as set in the fields: URL parameters, the /ask body's `filters` (null when none)
  // and a problem cheap to see here (an incomplete date, dates the wrong way round).
  function readFilters() {
    for (const f of [afterEl, beforeEl]) {
      if (f.validity.badInput) {
        const name = f === afterEl ? FILTERS.published_after.name : FILTERS.published_before.name;
        return { problem: { text: "Date de publication " + name + " incomplète : saisissez le jour, le mois et l’année, ou effacez-la.", fields: [f] } };
      }
    }
    if (docEl.value.trim() && !chosenDoc) {
      return { problem: { text: "Document « " + docEl.value.trim() + " » : choisissez-le dans la liste proposée, ou effacez le champ.", fields: [docEl] } };
    }
    const params = {};
    Object.keys(FILTERS).forEach((name) => {
      const v = name === "document_id" ? (chosenDoc ? chosenDoc.id : "") : FILTERS[name].el.value.trim();
      if (v) params[name] = v;
    });
    if (params.published_after && params.published_before && params.published_after > params.published_before) {
      return { problem: {
        text: "Date de publication : « À partir du » (" + frenchDate(params.published_after) + ") est après « Jusqu’au » (" + frenchDate(params.published_before) + ").",
        fields: [afterEl, beforeEl],
      } };
    }
    const body = {};
    if (params.published_after) body.published_after = params.published_after;
    if (params.published_before) body.published_before = params.published_before;
    if (params.document_id) body.document_ids = [params.document_id];
    if (params.source) body.source = params.source;
    return { params: params, filters: Object.keys(body).length ? body : null };
  }

  function updateFiltersSummary() {
    // the document once taken from the list: text only typed filters nothing (asking says so)
    const n = Object.keys(FILTERS).filter((name) => (name === "document_id" ? chosenDoc : FILTERS[name].el.value.trim())).length;
    filtersSummary.textContent = n ? "Filtres (" + n + (n === 1 ? " actif)" : " actifs)") : "Filtres";
  }

  // A date of a link ("2017", "2017-10" or a full date) as a date field takes it: the first or last
  // day of its period, as the API reads it. null when it is no date.
  function fieldDate(value, last) {
    const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/.exec(value);
    if (!m) return null;
    const y = Number(m[1]);
    const mo = m[2] ? Number(m[2]) : (last ? 12 : 1);
    const d = m[3] ? Number(m[3]) : (last ? new Date(Date.UTC(y, mo, 0)).getUTCDate() : 1);
    const iso = m[1] + "-" + String(mo).padStart(2, "0") + "-" + String(d).padStart(2, "0");
    const check = new Date(iso + "T00:00:00Z");
    return mo >= 1 && mo <= 12 && check.getUTCDate() === d ? iso : null;
  }

  // The fields from a link's parameters; a problem (a date no field can show) when there is one.
  function setFilters(params) {
    let problem = null;
    [["published_after", false], ["published_before", true]].forEach(([name, last]) => {
      const v = params.get(name) || "";
      const iso = v ? fieldDate(v, last) : "";
      FILTERS[name].el.value = iso || "";
      if (iso === null && !problem) problem = { text: "Le lien donne une date " + FILTERS[name].name + " illisible (« " + v + " ») : choisissez-la dans les filtres.", fields: [FILTERS[name].el] };
    });
    const doc = params.get("document_id") || "";
    cancelDocuments();
    chosenDoc = doc ? { id: doc, label: docLabels.get(doc) || doc } : null;
    docEl.value = chosenDoc ? chosenDoc.label : "";
    closeDocuments();
    noteChosen();
    if (chosenDoc && !docLabels.has(doc)) nameLinkedDocument(doc);
    sourceEl.value = params.get("source") || "";
    updateFiltersSummary();
    return problem;
  }

  function authHeaders() {
    const key = keyInput.value.trim() || sessionStorage.getItem(KEY_STORAGE) || "";
    return key ? { Authorization: "Bearer " + key } : {};
  }

  // --- the document field: a combobox over GET /documents?q= ----------------------------------

  function documentLabel(d) {
    const t = d.title || "document " + d.id;
    return (t.length > 90 ? t.slice(0, 89) + "…" : t) + (d.published ? " (" + frenchDate(d.published) + ")" : "");
  }

  // The note under the field is the combobox's polite live region (role=status): its counts, « Aucun
  // document ne contient … » and the document taken are heard as they come. Only a change is
  // written: the same text written again would be announced again.
  function setNote(text) {
    if (docsNote.textContent !== text) docsNote.textContent = text;
  }

  // The note under the field when no list is shown: the document taken, or how to find one.
  function noteChosen() {
    setNote(chosenDoc
      ? "Recherche limitée à ce document (" + chosenDoc.id + ") ; effacez le champ pour chercher dans tous."
      : DOCS_HINT);
  }

  // The field shows the taken document's label, which is no search (shortened, with its date): the
  // list is then the first documents, as for an empty field.
  // Punctuation alone is no search either: the server reads punctuation as spaces (index.catalog.match_key).
  function documentsQuery() {
    if (chosenDoc && docEl.value === chosenDoc.label) return "";
    const text = docEl.value.trim();
    return /[\p{L}\p{N}]/u.test(text) ? text : "";
  }

  function closeDocuments() {
    const wasOpen = !docList.hidden;
    docList.hidden = true;
    docEl.setAttribute("aria-expanded", "false");
    setActiveDocument(-1);
    if (wasOpen && chosenDoc) noteChosen(); // the count was for the list: say the document kept
  }

  // nothing more asked for or queued: a list on its way would come back over a newer state
  function cancelDocuments() {
    clearTimeout(docsTimer);
    docsTakeFirst = false;
    if (!docsRequest) return;
    const c = docsRequest;
    docsRequest = null; // first: the aborted request sees it is no longer the current one
    c.abort();
  }

  function openDocuments() {
    if (!docsShown.length) return closeDocuments();
    docList.hidden = false;
    docEl.setAttribute("aria-expanded", "true");
  }

  // the option under the keyboard's visual focus (DOM focus stays in the field: aria-activedescendant)
  function setActiveDocument(i) {
    docsActive = i;
    Array.from(docList.children).forEach((li, j) => li.setAttribute("aria-selected", j === i ? "true" : "false"));
    const li = docList.children[i];
    if (li) {
      docEl.setAttribute("aria-activedescendant", li.id);
      li.scrollIntoView({ block: "nearest" });
    } else {
      docEl.removeAttribute("aria-activedescendant");
    }
  }

  function chooseDocument(i) {
    const d = docsShown[i];
    if (!d) return;
    cancelDocuments(); // the search queued for the last key typed is moot
    chosenDoc = { id: d.id, label: documentLabel(d) };
    docEl.value = chosenDoc.label;
    closeDocuments();
    noteChosen();
    updateFiltersSummary();
  }

  // A link names its document by id: its title is asked for, to show it as the list does. A
  // document the index lacks is said (the question is asked all the same: it finds no passage).
  async function nameLinkedDocument(id) {
    const still = () => chosenDoc && chosenDoc.id === id && docEl.value === id; // not changed meanwhile
    let d = null;
    try {
      const resp = await fetch("documents/" + encodeURIComponent(id), { headers: authHeaders() });
      if (resp.status === 404 && still()) {
        setNote("Le lien désigne le document « " + id + " », absent de l’index : effacez le champ pour chercher dans tous.");
      }
      if (resp.ok) d = await resp.json();
    } catch (e) {
      d = null; // the id stays shown: the filter works without the title
    }
    if (!d || !still()) return;
    const label = documentLabel(d);
    docLabels.set(id, label);
    chosenDoc.label = label;
    docEl.value = label;
  }

  function documentsCount(total, shown, text) {
    if (!total) return text ? "Aucun document ne contient « " + text + " »." : "L’index ne contient aucun document.";
    const n = frNumber(total) + (total === 1 ? " document" : " documents");
    const head = text ? n + (total === 1 ? " contient" : " contiennent") + " « " + text + " »" : n;
    if (total <= shown) return head + ".";
    return head + " : les " + frNumber(shown) + " premiers sont proposés, " + (text ? "précisez." : "tapez une partie d’un titre pour trouver les autres.");
  }

  // `open`: the user waits for the list (else it is kept for later); `first`: the first option is
  // made active, so that Enter takes it (the first match of what was typed, as type-ahead does)
  function showDocuments(items, total, text, open, first) {
    docsShown = items.slice().sort((a, b) => (a.title || a.id).localeCompare(b.title || b.id, "fr"));
    docsFor = text;
    docsTotal = total;
    docList.replaceChildren(...docsShown.map((d, i) => {
      docLabels.set(d.id, documentLabel(d));
      const li = el("li", "option");
      li.id = "document-option-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.dataset.index = String(i);
      li.dataset.id = d.id;
      li.appendChild(el("span", "option-title", documentLabel(d)));
      if (d.title) { // an untitled one is labelled « document <id> » already: its id is said once
        li.appendChild(document.createTextNode(" "));
        li.appendChild(el("span", "doc-id", "document " + d.id));
      }
      return li;
    }));
    docsActive = -1;
    if (!open) return;
    if (docsTakeFirst) { // Enter was pressed for this text: its first match is taken
      docsTakeFirst = false;
      if (docsShown.length) return chooseDocument(0);
    }
    setNote(documentsCount(total, items.length, text));
    if (document.activeElement !== docEl) return;
    openDocuments();
    if (docsShown.length && first) setActiveDocument(0);
  }

  // The documents whose title or id holds `text` (all when blank), the first DOCS_SHOWN by id; a
  // newer request replaces one on its way. `open`, `first`: as for showDocuments.
  async function loadDocuments(text, open, first) {
    if (docsRequest) docsRequest.abort();
    const controller = new AbortController();
    docsRequest = controller;
    docsRequestFor = text;
    let timedOut = false;
    const slow = setTimeout(() => { if (open) setNote("Recherche des documents…"); }, DOCS_SLOW_MS);
    const timer = setTimeout(() => { timedOut = true; controller.abort(); }, DOCS_TIMEOUT_MS);
    let page;
    try {
      const url = "documents?limit=" + DOCS_SHOWN + (text ? "&q=" + encodeURIComponent(text) : "");
      const resp = await fetch(url, { headers: authHeaders(), signal: controller.signal });
      if (!resp.ok) {
        if (resp.status === 401 || resp.status === 403) keyRow.hidden = false;
        const detail = resp.status === 503 ? await resp.json().then((b) => String(b && b.detail), () => "") : "";
        throw new Error(resp.status === 401 || resp.status === 403 ? "une clé d’accès valide est nécessaire"
          : /\bindex is damaged\b/.test(detail) ? "l’index du service est endommagé : signalez-le à son administrateur" : "erreur " + resp.status);
      }
      page = await resp.json();
    } catch (e) {
      if (controller !== docsRequest) return; // replaced by a newer one
      docsRequest = null;
      docsFor = null; // asked again on the next key
      docsPrimed = false; // and on the next opening of the filters
      docsTakeFirst = false;
      closeDocuments();
      const why = timedOut ? "le service met trop de temps à répondre" : e instanceof TypeError ? "service injoignable" : e.message;
      setNote("La liste des documents n’a pas pu être chargée (" + why + ").");
      return;
    } finally {
      clearTimeout(slow);
      clearTimeout(timer);
    }
    if (controller !== docsRequest) return;
    docsRequest = null;
    showDocuments(Array.isArray(page.items) ? page.items : [], Number(page.total) || 0, text, open, first);
  }

  function queueDocuments() {
    clearTimeout(docsTimer);
    docsTimer = setTimeout(() => { const text = documentsQuery(); loadDocuments(text, true, Boolean(text)); }, DOCS_DELAY_MS);
  }

  // The list for what the field holds, asked for if it is not at hand; `active`: the option made
  // active (-1: none, as a click or Alt+Down opens it)
  function showList(active) {
    const text = documentsQuery();
    if (docsFor !== text) {
      clearTimeout(docsTimer);
      loadDocuments(text, true, active >= 0);
      return;
    }
    setNote(documentsCount(docsTotal, docsShown.length, text));
    openDocuments();
    if (docsShown.length && active >= 0) setActiveDocument(Math.min(active, docsShown.length - 1));
  }

  docEl.addEventListener("input", () => {
    if (chosenDoc && docEl.value !== chosenDoc.label) chosenDoc = null; // edited: no longer that document
    docsTakeFirst = false;
    // the list shown is for the text before: none of it stays under the keyboard (Enter waits for the new one)
    setActiveDocument(-1);
    if (!docEl.value.trim()) setNote(DOCS_HINT);
    queueDocuments();
  });

  // WAI-ARIA combobox keys: Down opens the list or moves down, Up moves up, Enter takes the option,
  // Escape closes the list; with the list closed, Enter asks the question as anywhere in the form.
  docEl.addEventListener("keydown", (ev) => {
    const open = !docList.hidden;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      if (!open) return showList(ev.altKey ? -1 : ev.key === "ArrowDown" ? 0 : Infinity); // Up: the last one
      const n = docsShown.length;
      setActiveDocument(ev.key === "ArrowDown" ? (docsActive + 1) % n : (docsActive <= 0 ? n - 1 : docsActive - 1));
    } else if (ev.key === "Enter" && open && docsActive >= 0) {
      ev.preventDefault();
      chooseDocument(docsActive);
    } else if (ev.key === "Enter" && !chosenDoc && documentsQuery() && docsFor !== documentsQuery()) {
      // typed faster than the list came (or it could not be had): its first match is taken when it comes
      ev.preventDefault();
      const text = documentsQuery();
      clearTimeout(docsTimer);
      if (!(docsRequest && docsRequestFor === text)) loadDocuments(text, true, true);
      docsTakeFirst = true;
    } else if (ev.key === "Escape" && open) {
      ev.preventDefault();
      closeDocuments();
    }
  });
  docEl.addEventListener("click", () => { if (docList.hidden) showList(-1); }); // as a drop-down opens
  docEl.addEventListener("blur", closeDocuments);
  docList.addEventListener("mousedown", (ev) => ev.preventDefault()); // the field keeps the focus
  docList.addEventListener("click", (ev) => {
    const li = ev.target.closest("[role=option]");
    if (li) chooseDocument(Number(li.dataset.index));
  });

  // --- asking ---------------------------------------------------------------------------------

  // A newer question replaces the one being answered (its answer would no longer match the box);
  // errors and time-outs clear the previous answers so that they are never shown under another question.
  function cancel() {
    if (!inFlight) return;
    const c = inFlight;
    inFlight = null; // first: the aborted request sees it is no longer the current one
    c.abort();
    results.removeAttribute("aria-busy");
  }

  // The question stays in its field (and the link) whatever goes wrong: asking again is one key away.
  async function ask(question, filters) {
    const sig = JSON.stringify([question, filters]);
    if (inFlight && inFlightKey === sig) return; // already on its way
    cancel();
    clearResults(); // the previous question's answers never show under this one
    clearInvalid();
    // each question is a history entry: its title tells them apart (history menu, tabs, screen readers)
    document.title = question + " — " + PAGE_TITLE;
    const controller = new AbortController();
    inFlight = controller;
    inFlightKey = sig;
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; controller.abort(); }, TIMEOUT_MS);
    showStatus("Recherche en cours…");
    results.setAttribute("aria-busy", "true");
    const headers = Object.assign({ "Content-Type": "application/json" }, authHeaders());
    const payload = filters ? { question: question, filters: filters } : { question: question };
    try {
      const resp = await fetch("ask", { method: "POST", headers: headers, body: JSON.stringify(payload), signal: controller.signal });
      let body = null;
      try { body = await resp.json(); } catch (e) { body = null; } // a proxy's error page is HTML
      if (controller !== inFlight) return; // a newer question was asked meanwhile
      if (!resp.ok) {
        clearResults();
        showError(httpProblem(resp.status, body, retryAfter(resp)));
        if (resp.status === 401 || resp.status === 403) {
          keyRow.hidden = false;
          sessionStorage.removeItem(KEY_STORAGE);
          keyInput.focus(); // where the user must act (a field that just appeared, not described by the alert)
        }
        return;
      }
      if (!body || !Array.isArray(body.answers)) {
        clearResults();
        showError({ text: "La réponse du service est illisible (erreur " + resp.status + "). Réessayez plus tard." });
        return;
      }
      if (headers.Authorization) sessionStorage.setItem(KEY_STORAGE, headers.Authorization.slice(7));
      render(body, question, Boolean(filters));
      const n = body.answers.length;
      showStatus((n ? (n === 1 ? "1 réponse" : n + " réponses") : "Aucune réponse trouvée") + (filters ? " (filtres appliqués)" : ""));
    } catch (e) {
      if (controller !== inFlight) return;
      clearResults();
      let text = "Le service est injoignable. Vérifiez votre connexion et réessayez.";
      if (timedOut) text = "Le service met trop de temps à répondre (plus de " + TIMEOUT_MS / 1000 + " s). Réessayez dans un moment.";
      else if (navigator.onLine === false) text = "Connexion perdue : cet appareil est hors ligne. Rétablissez la connexion, puis réessayez.";
      showError({ text: text });
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
    if (chars > MAX_CHARS) return "La question est trop longue : " + frNumber(MAX_CHARS) + " caractères au plus (" + frNumber(chars) + " saisis).";
    return null;
  }

  // a problem found here: nothing is asked, the previous answers go
  function refuse(problem) {
    cancel();
    clearResults();
    clearInvalid();
    showError(problem);
  }

  function askFromUrl() {
    const params = new URLSearchParams(window.location.search);
    const q = (params.get("q") || "").trim();
    input.value = q;
    const badLink = setFilters(params);
    if (!q) { // back to the page without a question: nothing of an earlier one stays
      cancel();
      clearResults();
      clearInvalid();
      showStatus("");
      document.title = PAGE_TITLE;
      return;
    }
    const problem = check(q);
    if (problem) return refuse({ text: problem, fields: [input] });
    if (badLink) return refuse(badLink);
    const f = readFilters();
    if (f.problem) return refuse(f.problem);
    ask(q, f.filters);
  }

  // On a phone the open filters push the messages below the screen: the reply to « Demander » (a
  // refusal, or the progress, which the count or an error then replaces in place) is scrolled into
  // sight. The focus stays where it is (see markInvalid).
  function revealReply() {
    const shown = errorEl.textContent ? errorEl : statusEl;
    const r = shown.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) shown.scrollIntoView({ block: "nearest" });
  }

  function submitted() {
    docsTakeFirst = false; // asked with what the field holds now
    closeDocuments();
    const q = input.value.trim();
    const problem = check(q);
    if (problem) return refuse({ text: problem, fields: [input] });
    const f = readFilters();
    if (f.problem) return refuse(f.problem);
    // each question is a history entry, with its filters: Back returns to the previous one, a link asks it again
    const url = new URL(window.location.href);
    url.search = new URLSearchParams(Object.assign({ q: q }, f.params)).toString();
    if (url.href !== window.location.href) window.history.pushState(null, "", url);
    ask(q, f.filters);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitted();
    revealReply();
  });

  filtersBox.addEventListener("toggle", () => {
    if (!filtersBox.open || docsPrimed) return;
    docsPrimed = true; // the first documents, ready for the first Down key; a key problem is said now
    // toggle comes a task after the opening: a list already asked for (a Down key pressed in between)
    // is not replaced by this one, which would not open it
    if (docsRequest || docsFor !== null) return;
    loadDocuments("", false, false);
  });
  form.addEventListener("input", (ev) => { if (filtersBox.contains(ev.target)) updateFiltersSummary(); });
  form.addEventListener("change", (ev) => { if (filtersBox.contains(ev.target)) updateFiltersSummary(); });
  $("filters-reset").addEventListener("click", () => {
    Object.keys(FILTERS).forEach((name) => { FILTERS[name].el.value = ""; });
    cancelDocuments();
    chosenDoc = null;
    closeDocuments();
    setNote(DOCS_HINT);
    updateFiltersSummary();
    clearInvalid();
    showStatus("Filtres effacés.");
  });

  window.addEventListener("popstate", askFromUrl);

  // /?q=... asks directly (shareable links, filters included)
  askFromUrl();
})();
