//! Server-sent events (the `text/event-stream` of OpenAI's and Anthropic's streamed answers), parsed
//! from text pieces as [`crate::HttpStream::read`] hands them out: a line or an event may be split
//! anywhere between two pieces.

/// One event: its `event:` name (`None` when the server sent none) and its `data:` lines joined by `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field.
    pub event: Option<String>,
    /// The `data:` field(s).
    pub data: String,
}

/// Collects pieces of an event stream and hands out the events they complete.
#[derive(Debug, Default)]
pub struct SseParser {
    line: String,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds a piece of the stream; returns the events it completed, in order.
    pub fn feed(&mut self, piece: &str) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for c in piece.chars() {
            if c == '\n' {
                let line = std::mem::take(&mut self.line);
                let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
                self.line_done(&line, &mut out);
            } else {
                self.line.push(c);
            }
        }
        out
    }

    /// The end of the stream: an event not closed by a blank line still counts.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut out);
        }
        self.line_done("", &mut out);
        out
    }

    fn line_done(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseEvent { event: self.event.take(), data });
            }
            self.event = None;
            return;
        }
        if line.starts_with(':') {
            return; // a comment (a keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {} // id, retry: nothing a one-shot reader needs
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere() {
        let text = "event: a\ndata: {\"x\": 1}\n\n: ping\r\ndata: two\ndata: lines\r\n\ndata: [DONE]\n\n";
        for size in 1..text.len() {
            let mut parser = SseParser::new();
            let mut events = Vec::new();
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(size) {
                events.extend(parser.feed(&piece.iter().collect::<String>()));
            }
            events.extend(parser.finish());
            assert_eq!(
                events,
                vec![
                    SseEvent { event: Some("a".into()), data: "{\"x\": 1}".into() },
                    SseEvent { event: None, data: "two\nlines".into() },
                    SseEvent { event: None, data: "[DONE]".into() },
                ]
            );
        }
    }
}
