//! `chainsocket/react`: a ReAct agent (Yao et al. 2022) in the form of LangChain's
//! zero-shot-react-description agent. It lists the tools the app gave it in the prompt, asks its
//! LLM for Thought / Action / Action Input, runs the action, feeds the Observation back, and
//! stops at `Final Answer:` or after `max_steps` LLM calls. See docs/plugins/react.md.

mod actions;
mod parse;
mod prompt;
mod scratchpad;
mod settings;
mod tool_calling;

use chainsocket::{AgentFinish, AgentInput, AgentOutput, BoxError, Descriptor, FinishReason, LlmRequest, LogLevel, Message};

use actions::Action;
use parse::Turn;
use scratchpad::{truncate, Scratchpad};
use settings::{Mode, Settings};

/// LangChain's iteration-limit message (its "force" early stopping), plus the last thought.
const STOPPED: &str = "Agent stopped due to iteration limit.";
/// How much of a thought or observation goes into one log line.
const LOG_CHARS: usize = 500;

chainsocket::export!(call, |input: AgentInput| -> Result<AgentOutput, BoxError> { Ok(run(input)) });

/// Never fails the call: configuration and LLM problems come back as `finish_reason: error`.
fn run(input: AgentInput) -> AgentOutput {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => return AgentOutput::error(format!("react: {}", e)),
    };
    let llm = match pick_llm(&input.llms, settings.llm.as_deref()) {
        Ok(name) => name,
        Err(e) => return AgentOutput::error(format!("react: {}", e)),
    };
    let actions = actions::collect(input.tools, input.agents);
    if settings.mode == Mode::ToolCalling {
        if let Some(out) = tool_calling::run(&settings, &llm, &actions, &input.input) {
            return out;
        }
        log(LogLevel::Warn, &format!("llm {} has no native tool calling: using the ReAct text format", llm));
    }
    react(&settings, &llm, &actions, &input.input)
}

/// The LLM named by config `llm` (exactly, else ignoring case), or the first one given.
fn pick_llm(llms: &[Descriptor], wanted: Option<&str>) -> Result<String, String> {
    let names: Vec<&str> = llms.iter().map(|d| d.name.as_str()).collect();
    let found = match wanted {
        None => names.first().copied(),
        Some(w) => names.iter().copied().find(|n| *n == w).or_else(|| names.iter().copied().find(|n| n.eq_ignore_ascii_case(w))),
    };
    match (found, wanted) {
        (Some(name), _) => Ok(name.to_string()),
        (None, None) => Err("this agent has no llm: list one under `llms:` of the agent in app.yaml".to_string()),
        (None, Some(w)) => Err(format!("config llm {:?} is not one of this agent's llms [{}]; add it to the agent's \
                                        `llms:` in app.yaml or fix the name", w, names.join(", "))),
    }
}

/// The text ReAct loop: one LLM call per step, each step's text and Observation appended to
/// the scratchpad.
fn react(settings: &Settings, llm: &str, actions: &[Action], question: &str) -> AgentOutput {
    let descriptors: Vec<Descriptor> = actions.iter().map(|a| a.descriptor.clone()).collect();
    let head = prompt::prompt_head(&settings.prompt, &descriptors, question);
    let mut pad = Scratchpad::new(settings.max_scratchpad_bytes);
    let mut last_thought = String::new();
    for step in 1..=settings.max_steps {
        let request = LlmRequest {
            messages: vec![Message::user(prompt_text(&head, &pad))],
            stop: Some(vec![parse::OBSERVATION_STOP.to_string()]),
            max_tokens: settings.max_tokens,
            temperature: settings.temperature,
            ..LlmRequest::default()
        };
        let completion = match complete(llm, &request, step) {
            Ok(text) => text,
            Err(reason) => return AgentOutput::error(reason),
        };
        let text = parse::cut_at_stop(&completion);
        let thought = parse::thought(text);
        if !thought.is_empty() {
            log(LogLevel::Info, &format!("Thought: {}", truncate(thought, LOG_CHARS)));
            last_thought = thought.to_string();
        }
        let observation = match parse::parse(text) {
            Turn::Finish { answer } => {
                log(LogLevel::Info, &format!("Final Answer: {}", truncate(&answer, LOG_CHARS)));
                return AgentOutput::final_answer(answer);
            }
            Turn::Action { tool, input } => {
                log(LogLevel::Info, &format!("Action: {} | Action Input: {}", tool, truncate(&input, LOG_CHARS)));
                match actions::find(actions, &tool) {
                    Some(action) => actions::run(action, actions::Input::from_action_input(action, input)),
                    None => actions::not_a_tool(actions, &tool),
                }
            }
            Turn::Invalid { observation } => {
                log(LogLevel::Warn, &format!("step {}: {}", step, observation));
                observation.to_string()
            }
        };
        log(LogLevel::Info, &format!("Observation: {}", truncate(&observation, LOG_CHARS)));
        pad.push(text, &observation);
    }
    stopped(&last_thought)
}

/// The prompt head, a note when old steps were dropped, then `Thought:` and the scratchpad.
fn prompt_text(head: &str, pad: &Scratchpad) -> String {
    let rendered = pad.render();
    let mut text = String::with_capacity(head.len() + rendered.text.len() + 80);
    text.push_str(head);
    if rendered.omitted > 0 {
        text.push_str(&format!("\n({} earlier steps omitted to keep the prompt short)", rendered.omitted));
    }
    text.push_str("\nThought:");
    text.push_str(&rendered.text);
    text
}

/// One LLM call; `Err` is the agent's error output (host refusal or the model's own error).
fn complete(llm: &str, request: &LlmRequest, step: u32) -> Result<String, String> {
    match chainsocket::call_llm_with(llm, request) {
        Err(e) => Err(format!("llm {} failed at step {} ({}): {}", llm, step, e.code, e.message)),
        Ok(resp) if resp.finish_reason == FinishReason::Error => Err(format!(
            "llm {} failed at step {}: {}",
            llm,
            step,
            resp.error.as_deref().filter(|e| !e.is_empty()).unwrap_or("it gave no reason")
        )),
        Ok(resp) => Ok(resp.content),
    }
}

/// The `max_steps` answer.
fn stopped(last_thought: &str) -> AgentOutput {
    let output = if last_thought.is_empty() {
        STOPPED.to_string()
    } else {
        format!("{} Last thought: {}", STOPPED, truncate(last_thought, LOG_CHARS))
    };
    AgentOutput { output, finish_reason: AgentFinish::MaxSteps }
}

fn log(level: LogLevel, line: &str) {
    chainsocket::log(level, line);
}
