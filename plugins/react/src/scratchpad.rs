//! The agent's scratchpad: each step's LLM text and Observation, rendered as LangChain does
//! (`{log}\nObservation: {observation}\nThought:`), bounded so a chatty tool cannot grow the
//! prompt without limit.

/// One Thought/Action/Observation round.
struct Step {
    log: String,
    observation: String,
}

/// Steps so far, with a byte bound on what is rendered into the prompt.
pub struct Scratchpad {
    steps: Vec<Step>,
    max_bytes: usize,
}

/// The rendered scratchpad and how many of the oldest steps did not fit.
pub struct Rendered {
    pub text: String,
    pub omitted: usize,
}

impl Scratchpad {
    /// An empty scratchpad that renders at most about `max_bytes`.
    pub fn new(max_bytes: usize) -> Scratchpad {
        Scratchpad { steps: Vec::new(), max_bytes }
    }

    /// Records a step. The LLM text and the observation are each cut to a quarter of the bound,
    /// so the newest step always fits.
    pub fn push(&mut self, log: &str, observation: &str) {
        let part = self.max_bytes / 4;
        self.steps.push(Step { log: truncate(log, part), observation: truncate(observation, part) });
    }

    /// The newest steps that fit in the bound, oldest first.
    pub fn render(&self) -> Rendered {
        let mut size = 0;
        let mut first = self.steps.len();
        for (i, step) in self.steps.iter().enumerate().rev() {
            let cost = step.log.len() + step.observation.len() + "\nObservation: \nThought:".len();
            if size + cost > self.max_bytes && first < self.steps.len() {
                break;
            }
            size += cost;
            first = i;
        }
        let mut text = String::with_capacity(size);
        for step in &self.steps[first..] {
            text.push_str(&step.log);
            text.push_str("\nObservation: ");
            text.push_str(&step.observation);
            text.push_str("\nThought:");
        }
        Rendered { text, omitted: first }
    }
}

/// `text` cut to at most about `max` bytes on a character boundary, saying how much was cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated: {} more bytes]", &text[..end], text.len() - end)
}
