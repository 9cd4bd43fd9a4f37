// The page: plain DOM calls against the API (no framework, no build step).
"use strict";

const $ = (id) => document.getElementById(id);
const liked = new Map(); // game_id -> name

async function api(path, options) {
  const res = await fetch(path, options);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail || `${res.status} ${res.statusText}`);
  return body;
}

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// A cover that works offline: a gradient with the initials, and the RAWG image on top only if it loads.
function cover(game) {
  let hash = 0;
  for (const ch of game.name) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  const box = el("div", { class: "cover" });
  // CSSOM, not a style attribute: the Content-Security-Policy (style-src 'self') blocks inline style attributes.
  box.style.setProperty("--c1", `hsl(${hash % 360} 55% 45%)`);
  box.style.setProperty("--c2", `hsl(${(hash >> 8) % 360} 55% 35%)`);
  const initials = game.name.split(/\s+/).map((w) => w.replace(/[^\p{L}\p{N}]/gu, "")).filter(Boolean)
    .slice(0, 2).map((w) => w[0]).join("").toUpperCase();
  box.append(el("span", { class: "initials", "aria-hidden": "true" }, initials || "?"));
  if (game.background_image) {
    const img = el("img", { alt: "", loading: "lazy", decoding: "async" });
    img.addEventListener("error", () => img.remove());
    img.src = game.background_image;
    box.append(img);
  }
  return box;
}

// A card: the game (a click shows similar games) and, for recommendations, a "Played it" button. `feedback`
// (recommendation cards only) carries the answer the card came from, for the events it posts.
function card(game, reason, feedback) {
  const meta = [(game.genres || []).slice(0, 3).join(", "), game.rating ? `★ ${game.rating.toFixed(2)}` : ""]
    .filter(Boolean).join(" · ");
  const open = el("button", { type: "button", class: "open", title: "Show similar games" },
    cover(game),
    el("div", { class: "body" }, el("h3", {}, game.name), el("span", { class: "meta" }, meta),
      reason ? el("span", { class: "reason" }, reason) : ""));
  open.addEventListener("click", () => {
    if (feedback) postEvents([feedbackEvent(feedback, game, "click")], feedback.token).catch(() => {}); // a measurement: best effort
    showSimilar(game);
  });
  const node = el("div", { class: "card", dataset: { gameId: game.game_id }, "data-testid": "card" }, open);
  if (feedback) {
    const played = el("button", { type: "button", class: "played-it secondary small", "data-testid": "played-it" },
      "Played it");
    played.addEventListener("click", () => playedIt(feedback, game, played));
    node.append(played);
  }
  return node;
}

function fill(container, nodes, emptyText) {
  container.replaceChildren(...(nodes.length ? nodes : [el("p", { class: "empty" }, emptyText)]));
}

// The chosen player's id (a string: ids are strings in the API), or "" for a new player.
const player = () => $("user").value;

// -- feedback events (POST /events) ------------------------------------------------------------------------------

function randomHex(bytes) {
  // crypto.getRandomValues also works outside secure contexts (crypto.randomUUID does not)
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// A new player is a guest with an id of this page's own, so the games they play build a history of their own
// (unknown ids are guests to /predict until their first events arrive).
const guestId = `guest-${randomHex(8)}`;
const playerOrGuest = () => player() || guestId;

// Every event gets its id here, so a retry (the network dropped the answer) is a duplicate, never counted twice.
function feedbackEvent(feedback, game, type) {
  const event = { event_id: randomHex(16), user_id: feedback.userId, game_id: game.game_id, type };
  if (feedback.requestId) event.request_id = feedback.requestId;
  return event;
}

// The answer's event_token is the page's credential: it allows the click and play events of that answer only.
async function postEvents(events, token) {
  return api("/events", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ events }),
    keepalive: true, // a click that navigates away still gets its event out
  });
}

const REFRESH_AFTER_MS = 1500; // the served histories take up the event within 2 s

async function playedIt(feedback, game, button) {
  button.disabled = true;
  try {
    const res = await postEvents([feedbackEvent(feedback, game, "play")], feedback.token);
    const result = res.results[0];
    if (result.result === "rejected") throw new Error(result.reason);
    button.textContent = "Played ✓";
    button.dataset.result = result.result;
    setStatus(`Noted: ${feedback.who} played ${game.name}. Updating the recommendations…`);
    setTimeout(() => { feedback.refresh(); if (player()) showPlayed(); }, REFRESH_AFTER_MS);
  } catch (err) {
    button.disabled = false;
    setStatus(`Could not record the play: ${err.message}`, true);
  }
}

async function recommend() {
  const userId = player();
  const asked = playerOrGuest();
  setStatus("Recommending…");
  try {
    const res = await api("/predict", {
      method: "POST",
      headers: { "content-type": "application/json" },
      // a new player is this page's guest id: nobody's id in the served version
      body: JSON.stringify({ user_id: asked, k: 12, liked_game_ids: [...liked.keys()] }),
    });
    const feedback = { userId: asked, requestId: res.request_id, token: res.event_token,
      who: userId ? `player ${userId}` : "you", refresh: recommend };
    const names = new Map(res.because_games.map((g) => [g.game_id, g.name]));
    const label = { item_cf: "from your games", basket: "from the games you like", popular: "popular" };
    $("source").textContent = label[res.source] || res.source;
    fill($("recs"), res.items.map((g) => card(g, g.because.length
      ? `Because you ${res.source === "item_cf" ? "played" : "like"} ${g.because.map((id) => names.get(id)).join(", ")}`
      : "Popular with players", feedback)), "No recommendations.");
    $("model").textContent = modelLabel(res);
    setStatus(`${res.items.length} games (${res.source}).`);
  } catch (err) {
    setStatus(`Could not recommend: ${err.message}`, true);
  }
}

async function batch() {
  const userId = player();
  if (!userId) { setStatus("Precomputed recommendations need a player with history.", true); return; }
  setStatus("Loading precomputed recommendations…");
  try {
    const res = await api(`/users/${encodeURIComponent(userId)}/recommendations`);
    $("source").textContent = res.source === "batch" ? "precomputed" : "computed now";
    const feedback = { userId, requestId: res.request_id, token: res.event_token, who: `player ${userId}`,
      refresh: batch };
    fill($("recs"), res.items.map((g) => card(g, g.source === "item_cf" ? "From your play history" : "Popular with players",
      feedback)),
      "No recommendations.");
    $("model").textContent = `model ${res.model_version}`;
    setStatus(res.source === "batch"
      ? `${res.items.length} games precomputed by model ${res.model_version}.`
      : `${res.items.length} games computed now by model ${res.model_version} (the precomputed table holds ${res.batch_model_version ? `model ${res.batch_model_version}` : "nothing"} for this player).`);
  } catch (err) {
    setStatus(`Could not load: ${err.message}`, true);
  }
}

async function showSimilar(game) {
  $("similar-section").hidden = false;
  $("similar-name").textContent = game.name;
  try {
    const res = await api(`/games/${game.game_id}/similar?k=8`);
    // a game nobody has played yet is placed by its attributes (the hybrid model): say so instead of a percentage
    $("similar-name").textContent = res.new_game ? `${game.name} (new: no plays yet)` : game.name;
    fill($("similar"), res.items.map((g) => card(g, res.new_game || g.new
      ? `${g.new ? "New · " : ""}similar by genres, tags and name` : `${Math.round(g.score * 100)}% similar`)),
      "The model knows no similar games for this one.");
    $("similar-section").scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (err) {
    fill($("similar"), [], `Could not load similar games: ${err.message}`);
  }
}

function renderLiked() {
  $("liked").replaceChildren(...[...liked].map(([id, name]) => {
    const chip = el("button", { type: "button", class: "chip", title: "Remove" }, `${name} ✕`);
    chip.addEventListener("click", () => { liked.delete(id); renderLiked(); syncChecks(); });
    return chip;
  }));
}

function syncChecks() {
  for (const box of $("search-results").querySelectorAll("input")) box.checked = liked.has(Number(box.value));
}

let searchSeq = 0;
async function search() {
  const seq = ++searchSeq;
  const text = $("search").value.trim();
  if (!text) { $("search-results").replaceChildren(); return; }
  try {
    const res = await api(`/games?search=${encodeURIComponent(text)}&limit=10`);
    if (seq !== searchSeq) return; // a newer search is on its way
    $("search-results").replaceChildren(...res.items.map((g) => {
      const box = el("input", { type: "checkbox", value: g.game_id });
      box.checked = liked.has(g.game_id);
      box.addEventListener("change", () => {
        if (box.checked) liked.set(g.game_id, g.name); else liked.delete(g.game_id);
        renderLiked();
      });
      return el("li", {}, el("label", {}, box, g.name));
    }));
  } catch (err) {
    setStatus(`Search failed: ${err.message}`, true);
  }
}

const gamesText = (n) => `${n} ${n === 1 ? "game" : "games"}`;

// Ids are up to 128 characters: a long one is shortened in the middle in the list (both ends stay readable)
// and given whole in the tooltip, the select's own tooltip, the search results and the "Games … played" title.
const SHORT_ID = 28;
function shortId(id) {
  const chars = [...id];
  return chars.length <= SHORT_ID ? id : `${chars.slice(0, 16).join("")}…${chars.slice(-10).join("")}`;
}

function playerOption(u) {
  return el("option", { value: u.user_id, title: u.user_id },
    `Player ${shortId(u.user_id)} (${gamesText(u.games_played)})`);
}

// Select a player (adding it to the list when it came from the id search) and show what they played.
function choosePlayer(u) {
  const select = $("user");
  if (![...select.options].some((o) => o.value === u.user_id)) select.append(playerOption(u));
  select.value = u.user_id;
  showPlayed();
}

// The player's own games next to the recommendations, so "because you played" can be judged.
async function showPlayed() {
  const userId = player();
  $("user").title = userId; // the whole id, however long (the list shortens it)
  if (!userId) { $("played-section").hidden = true; return; }
  try {
    const res = await api(`/users/${encodeURIComponent(userId)}/history`);
    $("played-who").textContent = `player ${userId}`;
    fill($("played"), res.items.map((g) => card(g, "Played")), "No games.");
    $("played-section").hidden = false;
  } catch (err) {
    $("played-section").hidden = true;
    setStatus(`Could not load the player's games: ${err.message}`, true);
  }
}

// Where the served version's players come from, exactly as its manifest records it (GET /users).
function describePlayers(res) {
  if (res.interaction_source === "simulated") {
    return `Players: simulated (the default demo): their play logs were generated from the catalogue, not recorded from real people (model ${res.model_version}).`;
  }
  if (res.interaction_source) return `Players: from ${res.interaction_source} (model ${res.model_version}).`;
  return `Players: model ${res.model_version} does not record where they come from.`;
}

// The footer credits RAWG only when the served catalogue is RAWG's; a site's own catalogue is named instead.
function showCredit(catalog) {
  const credit = $("credit");
  if (catalog === "rawg") {
    credit.replaceChildren("Data from ", el("a", { href: "https://rawg.io", rel: "noopener" }, "RAWG (https://rawg.io)"), ".");
  } else {
    credit.replaceChildren(catalog ? `Catalogue: ${catalog}.` : "");
  }
}

let playerSeq = 0;
async function searchPlayers() {
  const seq = ++playerSeq;
  const text = $("player-search").value.trim();
  if (!text) { $("player-results").replaceChildren(); return; }
  try {
    const res = await api(`/users?prefix=${encodeURIComponent(text)}&limit=10`);
    if (seq !== playerSeq) return; // a newer search is on its way
    const items = res.items.map((u) => {
      const pick = el("button", { type: "button", class: "link", "data-testid": "player-result", title: u.user_id },
        `Player ${u.user_id} (${gamesText(u.games_played)})`);
      pick.addEventListener("click", () => { choosePlayer(u); $("player-results").replaceChildren(); });
      return el("li", {}, pick);
    });
    if (res.total > res.items.length) items.push(el("li", { class: "more" }, `… ${res.total - res.items.length} more: type more of the id`));
    fill($("player-results"), items, "No player id starts with that.");
  } catch (err) {
    setStatus(`Player search failed: ${err.message}`, true);
  }
}

// Which model answered: during an online experiment the request id names it (<id>~<experiment>~<arm>~<version>).
function modelLabel(res) {
  const parts = (res.request_id || "").split("~");
  if (!res.variant || parts.length < 4) return `model ${res.model_version}`;
  if (res.variant === "interleave") return `models ${parts[3]} and ${parts[4]} interleaved (experiment ${parts[1]})`;
  return `model ${res.model_version}, the ${res.variant} of experiment ${parts[1]}`;
}

async function loadUsers() {
  try {
    const res = await api("/users?limit=200");
    for (const u of res.items) $("user").append(playerOption(u));
    $("players-note").textContent = describePlayers(res);
    $("players-note").classList.toggle("simulated", res.simulated === true);
    showCredit(res.catalog_source);
    $("model").textContent = `model ${res.model_version}`;
  } catch (err) {
    setStatus(`The service is not ready: ${err.message}`, true);
  }
}

let timer;
let playerTimer;
document.addEventListener("DOMContentLoaded", () => {
  $("recommend").addEventListener("click", recommend);
  $("batch").addEventListener("click", batch);
  $("close-similar").addEventListener("click", () => { $("similar-section").hidden = true; });
  $("search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 200); });
  $("player-search").addEventListener("input", () => { clearTimeout(playerTimer); playerTimer = setTimeout(searchPlayers, 200); });
  $("user").addEventListener("change", showPlayed);
  loadUsers();
});
