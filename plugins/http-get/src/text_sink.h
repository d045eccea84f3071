/*
 * text_sink.h - builds the text a tool returns: collapses whitespace the way a browser does, keeps
 * at most `limit` characters (code points, so a cut never splits a UTF-8 sequence) and counts the
 * characters it had to drop, for the "…[truncated N chars]" marker.
 */
#ifndef TEXT_SINK_H
#define TEXT_SINK_H

#include "cs_json.h"

typedef struct {
    cs_jw out;            /* the kept bytes (cs_jw doubles as a string builder) */
    size_t limit;         /* characters to keep */
    size_t kept;          /* characters kept */
    size_t dropped;       /* characters past the limit */
    bool writing;         /* whether the current code point is being kept (for continuation bytes) */
    int pending_breaks;   /* line breaks owed before the next visible character (0-2) */
    bool pending_space;   /* a space owed before the next visible character */
    bool one_line;        /* breaks become spaces (short summaries such as error details) */
} text_sink;

void sink_init(text_sink *s, size_t limit);
void sink_free(text_sink *s);

/* Bytes shown as they are: no collapsing (JSON, plain text, <pre>). */
void sink_raw(text_sink *s, const char *bytes, size_t n);
/* Text whose whitespace runs collapse into one space; leading and trailing space is dropped. */
void sink_text(text_sink *s, const char *bytes, size_t n);
/* A block boundary: `breaks` = 1 ends the line, 2 also leaves an empty line. Never at the start. */
void sink_break(text_sink *s, int breaks);
/* Whether nothing visible has been written yet. */
bool sink_empty(const text_sink *s);
/* Appends the truncation marker when characters were dropped: `style_full` gives
 * "\n…[truncated N chars]", otherwise just "…". */
void sink_finish(text_sink *s, bool style_full);

#endif
