// Turns a SerpAPI Google result into one short text, in the priority order of LangChain's
// SerpAPIWrapper._process_response: the most direct answer Google shows wins.

import { Json } from "@chainsocket/as-sdk";
import { clean } from "./text";

export const NO_RESULT = "No good search result found";

/** The cleaned text of a string, a number, or a list of them (joined with ", "); "" otherwise. */
function textOf(v: Json | null): string {
  if (v === null) return "";
  if (v.isString) return clean(v.asString());
  if (v.isNumber) return v.raw !== null ? v.raw! : v.asNumber().toString();
  if (v.isArray) {
    const parts: string[] = [];
    const items = v.asArray();
    for (let i = 0; i < items.length; i++) {
      const t = textOf(items[i]);
      if (t.length > 0) parts.push(t);
    }
    return parts.join(", ");
  }
  return "";
}

function isUrl(s: string): bool {
  return s.startsWith("http://") || s.startsWith("https://");
}

/** `key: value` for every short scalar field that is not a link, as LangChain's fallback keeps. */
function scalarFields(o: Json, skip: string[]): string {
  const keys = o.keys();
  const parts: string[] = [];
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (skip.includes(k) || k.endsWith("_link") || k == "link" || k == "thumbnail") continue;
    const v = o.get(k)!;
    if (!(v.isString || v.isNumber)) continue;
    const t = textOf(v);
    if (t.length == 0 || isUrl(t)) continue;
    parts.push(k.replaceAll("_", " ") + ": " + t);
  }
  return parts.join("; ");
}

/** Google's answer box: a direct answer, a featured snippet, a list, or its short fields. */
function answerBox(box: Json): string {
  const direct = ["answer", "result", "snippet"];
  for (let i = 0; i < direct.length; i++) {
    const t = textOf(box.get(direct[i]));
    if (t.length > 0) return t;
  }
  const words = textOf(box.get("snippet_highlighted_words"));
  if (words.length > 0) return words;
  const list = box.get("list");
  if (list !== null && list.isArray && list.length > 0) {
    const items: string[] = [];
    const entries = list.asArray();
    for (let i = 0; i < entries.length; i++) {
      const t = textOf(entries[i]);
      if (t.length > 0) items.push(t);
    }
    const title = textOf(box.get("title"));
    return (title.length > 0 ? title + ": " : "") + items.join("; ");
  }
  return scalarFields(box, ["type", "position"]);
}

/** A game spotlight: "Premier League, Today 3 PM: Arsenal 2 – Chelsea 1". */
function gameSpotlight(game: Json): string {
  const about: string[] = [];
  const meta = ["league", "stage", "date", "status", "stadium"];
  for (let i = 0; i < meta.length; i++) {
    const t = textOf(game.get(meta[i]));
    if (t.length > 0) about.push(t);
  }
  const teams = game.getArray("teams");
  const sides: string[] = [];
  if (teams !== null) {
    for (let i = 0; i < teams.length; i++) {
      const name = textOf(teams[i].get("name"));
      const score = textOf(teams[i].get("score"));
      if (name.length > 0) sides.push(score.length > 0 ? name + " " + score : name);
    }
  }
  const head = about.join(", ");
  const score = sides.join(" \u2013 ");
  if (head.length > 0 && score.length > 0) return head + ": " + score;
  return head.length > 0 ? head : score.length > 0 ? score : scalarFields(game, []);
}

/** The first shopping results: "title (price)". */
function shopping(results: Json[]): string {
  const parts: string[] = [];
  for (let i = 0; i < results.length && parts.length < 3; i++) {
    const title = textOf(results[i].get("title"));
    if (title.length == 0) continue;
    const price = textOf(results[i].get("price"));
    parts.push(price.length > 0 ? title + " (" + price + ")" : title);
  }
  return parts.join("; ");
}

/** "Title (type): description" of a knowledge graph that has a description. */
function knowledgeGraph(kg: Json): string {
  const description = textOf(kg.get("description"));
  if (description.length == 0) return "";
  const title = textOf(kg.get("title"));
  const kind = textOf(kg.get("type"));
  let head = title;
  if (kind.length > 0) head = head.length > 0 ? head + " (" + kind + ")" : kind;
  return head.length > 0 ? head + ": " + description : description;
}

/** What one organic result says: its snippet, else the highlighted words, else its link. */
function organicText(r: Json): string {
  let t = textOf(r.get("snippet"));
  if (t.length == 0) t = textOf(r.get("snippet_highlighted_words"));
  if (t.length == 0) t = r.getString("link");
  return t;
}

/** The first result's text, or with `count` > 1 the top results as "title: snippet" lines. */
function organic(results: Json[], count: i32): string {
  if (count <= 1) {
    for (let i = 0; i < results.length; i++) {
      const t = organicText(results[i]);
      if (t.length > 0) return t;
    }
    return "";
  }
  const lines: string[] = [];
  for (let i = 0; i < results.length && lines.length < count; i++) {
    const t = organicText(results[i]);
    const title = textOf(results[i].get("title"));
    if (t.length == 0 && title.length == 0) continue;
    lines.push(title.length > 0 && t.length > 0 ? title + ": " + t : title.length > 0 ? title : t);
  }
  return lines.join("\n");
}

/**
 * The answer for a SerpAPI result object without an `error` key: the first non-empty of answer
 * box, game spotlight, shopping, knowledge graph, organic results; else NO_RESULT.
 */
export function summarize(res: Json, results: i32): string {
  let box = res.get("answer_box");
  if (box === null) box = res.get("answer_box_list");
  if (box !== null && box.isArray) box = box.length > 0 ? box.asArray()[0] : null;
  if (box !== null && box.isObject) {
    const t = answerBox(box);
    if (t.length > 0) return t;
  }
  const sports = res.get("sports_results");
  if (sports !== null) {
    const game = sports.get("game_spotlight");
    if (game !== null && game.isObject) {
      const t = gameSpotlight(game);
      if (t.length > 0) return t;
    }
  }
  const shop = res.getArray("shopping_results");
  if (shop !== null) {
    const t = shopping(shop);
    if (t.length > 0) return t;
  }
  const kg = res.get("knowledge_graph");
  if (kg !== null && kg.isObject) {
    const t = knowledgeGraph(kg);
    if (t.length > 0) return t;
  }
  const org = res.getArray("organic_results");
  if (org !== null) {
    const t = organic(org, results);
    if (t.length > 0) return t;
  }
  return NO_RESULT;
}
