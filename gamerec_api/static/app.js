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

function card(game, reason) {
  const meta = [(game.genres || []).slice(0, 3).join(", "), game.rating ? `★ ${game.rating.toFixed(2)}` : ""]
    .filter(Boolean).join(" · ");
  const node = el("button", { type: "button", class: "card", dataset: { gameId: game.game_id }, "data-testid": "card" },
    cover(game),
    el("div", { class: "body" }, el("h3", {}, game.name), el("span", { class: "meta" }, meta),
      reason ? el("span", { class: "reason" }, reason) : ""));
  node.addEventListener("click", () => showSimilar(game));
  return node;
}

function fill(container, nodes, emptyText) {
  container.replaceChildren(...(nodes.length ? nodes : [el("p", { class: "empty" }, emptyText)]));
}

async function recommend() {
  const userId = Number($("user").value);
  setStatus("Recommending…");
  try {
    const res = await api("/predict", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user_id: userId, k: 12, liked_game_ids: [...liked.keys()] }),
    });
    const names = new Map(res.because_games.map((g) => [g.game_id, g.name]));
    const label = { item_cf: "from your games", basket: "from the games you like", popular: "popular" };
    $("source").textContent = label[res.source] || res.source;
    fill($("recs"), res.items.map((g) => card(g, g.because.length
      ? `Because you ${userId && res.source === "item_cf" ? "played" : "like"} ${g.because.map((id) => names.get(id)).join(", ")}`
      : "Popular with players")), "No recommendations.");
    $("model").textContent = `model ${res.model_version}`;
    setStatus(`${res.items.length} games (${res.source}).`);
  } catch (err) {
    setStatus(`Could not recommend: ${err.message}`, true);
  }
}

async function batch() {
  const userId = Number($("user").value);
  if (!userId) { setStatus("Precomputed recommendations need a player with history.", true); return; }
  setStatus("Loading precomputed recommendations…");
  try {
    const res = await api(`/users/${userId}/recommendations`);
    $("source").textContent = "precomputed";
    fill($("recs"), res.items.map((g) => card(g, g.source === "item_cf" ? "From your play history" : "Popular with players")),
      "No recommendations.");
    setStatus(`${res.items.length} games precomputed by model ${res.model_version}.`);
  } catch (err) {
    setStatus(`Could not load: ${err.message}`, true);
  }
}

async function showSimilar(game) {
  $("similar-section").hidden = false;
  $("similar-name").textContent = game.name;
  try {
    const res = await api(`/games/${game.game_id}/similar?k=8`);
    fill($("similar"), res.items.map((g) => card(g, `${Math.round(g.score * 100)}% similar`)),
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

async function loadUsers() {
  try {
    const res = await api("/users?limit=200");
    for (const u of res.items) {
      $("user").append(el("option", { value: u.user_id }, `Player ${u.user_id} (${u.games_played} ${u.games_played === 1 ? "game" : "games"})`));
    }
  } catch (err) {
    setStatus(`The service is not ready: ${err.message}`, true);
  }
}

let timer;
document.addEventListener("DOMContentLoaded", () => {
  $("recommend").addEventListener("click", recommend);
  $("batch").addEventListener("click", batch);
  $("close-similar").addEventListener("click", () => { $("similar-section").hidden = true; });
  $("search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 200); });
  loadUsers();
});
