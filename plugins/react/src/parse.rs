//! Reads one LLM turn the way LangChain's `MRKLOutputParser` does (zero-shot-react-description).
//!
//! There is no regex crate offline, so the LangChain pattern
//! `Action\s*\d*\s*:[\s]*(.*?)[\s]*Action\s*\d*\s*Input\s*\d*\s*:[\s]*(.*)` (dot-all) is matched by
//! hand: the leftmost `Action:` header that has an `Action Input:` header after it, the action
//! name lazily up to that header, the input to the end of the text.

/// Marks the answer, as in LangChain.
pub const FINAL_ANSWER: &str = "Final Answer:";
/// The stop sequence sent to the LLM; also enforced here for LLMs that ignore `stop`.
pub const OBSERVATION_STOP: &str = "\nObservation:";

/// LangChain's observation when no `Action:` follows the thought (quote typo fixed).
pub const MISSING_ACTION: &str = "Invalid Format: Missing 'Action:' after 'Thought:'";
/// LangChain's observation when `Action:` has no `Action Input:`.
pub const MISSING_ACTION_INPUT: &str = "Invalid Format: Missing 'Action Input:' after 'Action:'";
/// An action and a final answer in one turn, the action first (LangChain raises here too).
pub const ACTION_AND_FINAL_ANSWER: &str = "Invalid Format: found both an 'Action:' and a 'Final Answer:'; \
     either take one action and wait for its Observation, or give the Final Answer";
/// Headers present but not in an order that can be read.
pub const UNREADABLE: &str = "Invalid Format: write 'Action:' with a tool name, then 'Action Input:' on the next line";

/// What the LLM asked for in one turn.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// Call `tool` with `input` (already unquoted).
    Action { tool: String, input: String },
    /// Stop with this answer.
    Finish { answer: String },
    /// Unreadable: `observation` is fed back to the LLM as the step's Observation.
    Invalid { observation: &'static str },
}

/// The LLM output up to its first `\nObservation:`: an LLM plug-in that does not honour `stop`
/// would otherwise make the agent read an observation the model invented.
pub fn cut_at_stop(text: &str) -> &str {
    match text.find(OBSERVATION_STOP) {
        Some(at) => &text[..at],
        None => text,
    }
}

/// Parses one (already stop-cut) LLM output.
pub fn parse(text: &str) -> Turn {
    let final_at = text.find(FINAL_ANSWER);
    if let Some((action_at, tool, input)) = find_action(text) {
        return match final_at {
            // LangChain: a final answer written before a hallucinated action wins, up to a blank line.
            Some(at) if at < action_at => {
                let rest = &text[at + FINAL_ANSWER.len()..];
                let end = rest.find("\n\n").unwrap_or(rest.len());
                Turn::Finish { answer: rest[..end].trim().to_string() }
            }
            Some(_) => Turn::Invalid { observation: ACTION_AND_FINAL_ANSWER },
            None => Turn::Action { tool: clean_tool_name(tool), input: clean_input(input) },
        };
    }
    if let Some(at) = final_at {
        let answer = text[at..].rsplit(FINAL_ANSWER).next().unwrap_or("");
        return Turn::Finish { answer: answer.trim().to_string() };
    }
    if !header_positions(text).any(|i| action_header(text, i).is_some()) {
        Turn::Invalid { observation: MISSING_ACTION }
    } else if !header_positions(text).any(|i| input_header(text, i).is_some()) {
        Turn::Invalid { observation: MISSING_ACTION_INPUT }
    } else {
        Turn::Invalid { observation: UNREADABLE }
    }
}

/// The thought of a turn: its text before `Action:` / `Final Answer:`, for logs and the
/// iteration-limit message.
pub fn thought(text: &str) -> &str {
    let end = header_positions(text)
        .find(|&i| action_header(text, i).is_some() || input_header(text, i).is_some())
        .unwrap_or(text.len());
    let end = text.find(FINAL_ANSWER).map_or(end, |f| f.min(end));
    let head = text[..end].trim();
    head.strip_prefix("Thought:").map_or(head, str::trim)
}

/// `(start of the Action header, action name, action input)` of the LangChain pattern.
fn find_action(text: &str) -> Option<(usize, &str, &str)> {
    let (start, name_from) = header_positions(text).find_map(|i| action_header(text, i).map(|end| (i, end)))?;
    // Lazy `(.*?)`: the first `Action Input:` header at or after the name. When the leftmost
    // action header has none after it, no later one has either.
    let (name_to, input_from) = header_positions(text)
        .filter(|&j| j >= name_from)
        .find_map(|j| input_header(text, j).map(|input_from| (j, input_from)))?;
    Some((start, &text[name_from..name_to], &text[input_from..]))
}

fn header_positions(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.match_indices("Action").map(|(i, _)| i)
}

/// `Action\s*\d*\s*:` at `at` → the offset after the colon.
fn action_header(text: &str, at: usize) -> Option<usize> {
    let mut i = at + "Action".len();
    i = skip(text, i, char::is_whitespace);
    i = skip(text, i, |c| c.is_ascii_digit());
    i = skip(text, i, char::is_whitespace);
    text[i..].starts_with(':').then(|| i + 1)
}

/// `Action\s*\d*\s*Input\s*\d*\s*:` at `at` → the offset after the colon.
fn input_header(text: &str, at: usize) -> Option<usize> {
    let mut i = at + "Action".len();
    i = skip(text, i, char::is_whitespace);
    i = skip(text, i, |c| c.is_ascii_digit());
    i = skip(text, i, char::is_whitespace);
    if !text[i..].starts_with("Input") {
        return None;
    }
    i = skip(text, i + "Input".len(), char::is_whitespace);
    i = skip(text, i, |c| c.is_ascii_digit());
    i = skip(text, i, char::is_whitespace);
    text[i..].starts_with(':').then(|| i + 1)
}

fn skip(text: &str, from: usize, keep: impl Fn(char) -> bool) -> usize {
    text[from..].find(|c: char| !keep(c)).map_or(text.len(), |n| from + n)
}

/// The action name without the decoration models add (`` `calc` ``, `[calc]`, `**calc**`).
fn clean_tool_name(raw: &str) -> String {
    raw.trim().trim_matches(|c: char| matches!(c, '`' | '"' | '\'' | '[' | ']' | '*')).trim().to_string()
}

/// The action input without surrounding whitespace, a code fence, or one pair of matching
/// quotes or backticks (LangChain strips `"` only; models quote with all three).
pub fn clean_input(raw: &str) -> String {
    let mut text = raw.trim();
    if let Some(inner) = text.strip_prefix("```").and_then(|t| t.strip_suffix("```")) {
        // Drop a language tag on the fence's first line (```json).
        text = match inner.split_once('\n') {
            Some((tag, body)) if !tag.trim().contains(' ') => body,
            _ => inner,
        }
        .trim();
    }
    for quote in ['"', '\'', '`'] {
        if text.len() >= 2 && text.starts_with(quote) && text.ends_with(quote) {
            return text[1..text.len() - 1].to_string();
        }
    }
    text.to_string()
}
