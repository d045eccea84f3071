package main

// Matching a natural-language question against the records: the entity by its longest name or
// alias found in the question, then the fields the rest of the question mentions.

import (
	"sort"
	"strings"
	"unicode"
)

// gap stands for the entity's words once removed, so a field phrase cannot span the name.
const gap = "\x00"

// plain folds the accented Latin letters people leave out when they type a name ("José" ->
// "jose"); the standard library has no Unicode normalisation, and this covers Latin-1 and the
// common Central European letters.
var plain = func() *strings.Replacer {
	groups := map[string]string{
		"a": "àáâãäåāăą", "c": "çćč", "d": "ďđ", "e": "èéêëēėęě", "g": "ğ", "i": "ìíîïīį", "l": "łľĺ",
		"n": "ñńň", "o": "òóôõöøō", "oe": "œ", "r": "řŕ", "s": "śšş", "ss": "ß", "t": "ťţ", "u": "ùúûüūůű",
		"y": "ýÿ", "z": "źżž", "ae": "æ", "'": "\u2019\u2018`",
	}
	var pairs []string
	for to, from := range groups {
		for _, r := range from {
			pairs = append(pairs, string(r), to)
		}
	}
	return strings.NewReplacer(pairs...)
}()

// words lower-cases s, folds accents and splits it into words of letters and digits; a
// possessive "'s" is dropped ("Lovelace's" -> "lovelace") and other punctuation separates words.
func words(s string) []string {
	s = plain.Replace(strings.ToLower(s))
	var out []string
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'') }) {
		w = strings.TrimSuffix(w, "'s")
		for _, part := range strings.Split(w, "'") {
			if part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// find returns where needle occurs in hay as a contiguous run, or -1.
func find(hay, needle []string, from int) int {
	if len(needle) == 0 {
		return -1
	}
	for i := from; i+len(needle) <= len(hay); i++ {
		ok := true
		for j, w := range needle {
			if !sameWord(hay[i+j], w) {
				ok = false
				break
			}
		}
		if ok {
			return i
		}
	}
	return -1
}

// sameWord tolerates an English plural on either side: "dates" ~ "date", "cities" ~ "city".
func sameWord(a, b string) bool {
	if a == b {
		return true
	}
	if a == gap || b == gap || len(a) < 4 || len(b) < 4 {
		return false
	}
	return singular(a) == singular(b)
}

func singular(w string) string {
	switch {
	case strings.HasSuffix(w, "ies"):
		return w[:len(w)-3] + "y"
	case strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss"):
		return w[:len(w)-1]
	}
	return w
}

// EntityMatch is a record found in the question, and the words its name took.
type EntityMatch struct {
	Record *Record
	Start  int
	Len    int
	Score  int // letters matched: the longest name wins
}

// FindEntities returns the records whose name or alias occurs in q with the highest score (ties
// kept, in file order: "Ada Lovelace" beats "Ada"; two "John Smith" records both answer).
func FindEntities(k *Knowledge, q []string) []EntityMatch {
	var best []EntityMatch
	for i := range k.Records {
		rec := &k.Records[i]
		var m *EntityMatch
		for _, name := range append([]string{rec.Name}, rec.Aliases...) {
			nw := words(name)
			at := find(q, nw, 0)
			if at < 0 {
				continue
			}
			score := len(strings.Join(nw, ""))
			if m == nil || score > m.Score {
				m = &EntityMatch{rec, at, len(nw), score}
			}
		}
		if m == nil {
			continue
		}
		switch {
		case len(best) == 0 || m.Score > best[0].Score:
			best = []EntityMatch{*m}
		case m.Score == best[0].Score:
			best = append(best, *m)
		}
	}
	return best
}

// fieldHit is a field phrase found in the question.
type fieldHit struct {
	field string
	first int   // where it starts, to answer in the question's order
	used  []int // the words it took
}

// phraseWords splits a synonym into parts at "…" / "...": "when was … born" matches "when was",
// then (anywhere later) "born".
func phraseWords(phrase string) [][]string {
	var parts [][]string
	for _, part := range strings.Split(strings.ReplaceAll(phrase, "...", "\u2026"), "\u2026") {
		if w := words(part); len(w) > 0 {
			parts = append(parts, w)
		}
	}
	return parts
}

func matchPhrase(q []string, parts [][]string) []int {
	var used []int
	from := 0
	for _, part := range parts {
		at := find(q, part, from)
		if at < 0 {
			return nil
		}
		for i := range part {
			used = append(used, at+i)
		}
		from = at + len(part)
	}
	return used
}

// FindFields returns the fields that q (with the entity's words replaced by gap) mentions, by
// their name ("birth_year" as "birth year") or a synonym of the file's "fields" map. Longer
// phrases take their words first, so "birth city" is city, not born.
func FindFields(k *Knowledge, rec *Record, q []string) []string {
	phrases := map[string][]string{}
	for _, f := range rec.Facts {
		phrases[f.Field] = append(phrases[f.Field], strings.NewReplacer("_", " ", "-", " ").Replace(f.Field))
	}
	for field, syn := range k.Synonyms {
		phrases[field] = append(phrases[field], syn...)
		phrases[field] = append(phrases[field], strings.NewReplacer("_", " ", "-", " ").Replace(field))
	}
	var hits []fieldHit
	for field, list := range phrases {
		for _, phrase := range list {
			if used := matchPhrase(q, phraseWords(phrase)); used != nil {
				hits = append(hits, fieldHit{field, used[0], used})
			}
		}
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if len(hits[i].used) != len(hits[j].used) {
			return len(hits[i].used) > len(hits[j].used)
		}
		if hits[i].first != hits[j].first {
			return hits[i].first < hits[j].first
		}
		return hits[i].field < hits[j].field
	})
	taken := map[int]bool{}
	chosen := map[string]int{}
	for _, h := range hits {
		if _, done := chosen[h.field]; done {
			continue
		}
		free := true
		for _, i := range h.used {
			if taken[i] {
				free = false
			}
		}
		if !free {
			continue
		}
		for _, i := range h.used {
			taken[i] = true
		}
		chosen[h.field] = h.first
	}
	fields := make([]string, 0, len(chosen))
	for f := range chosen {
		fields = append(fields, f)
	}
	sort.Slice(fields, func(i, j int) bool { return chosen[fields[i]] < chosen[fields[j]] })
	return fields
}

// Suggest lists up to 5 names close to words of q: a name within a small edit distance of a
// run of q's words, or sharing a distinctive word (4+ letters) with q.
func Suggest(k *Knowledge, q []string) []string {
	type near struct {
		name  string
		score float64
	}
	var found []near
	seen := map[string]bool{}
	for _, rec := range k.Records {
		best := 0.0
		for _, name := range append([]string{rec.Name}, rec.Aliases...) {
			if s := closeness(words(name), q); s > best {
				best = s
			}
		}
		if best >= 0.75 && !seen[rec.Name] {
			seen[rec.Name] = true
			found = append(found, near{rec.Name, best})
		}
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].score > found[j].score })
	var out []string
	for i := 0; i < len(found) && i < 5; i++ {
		out = append(out, found[i].name)
	}
	return out
}

func closeness(name, q []string) float64 {
	if len(name) == 0 {
		return 0
	}
	best := 0.0
	target := strings.Join(name, " ")
	for n := len(name) - 1; n <= len(name)+1; n++ {
		for i := 0; n > 0 && i+n <= len(q); i++ {
			if s := similarity(target, strings.Join(q[i:i+n], " ")); s > best {
				best = s
			}
		}
	}
	for _, w := range name {
		if len([]rune(w)) >= 4 && find(q, []string{w}, 0) >= 0 && best < 0.8 {
			best = 0.8
		}
	}
	return best
}

// similarity is 1 - edit distance / length of the longer string.
func similarity(a, b string) float64 {
	ra, rb := []rune(a), []rune(b)
	longer := len(ra)
	if len(rb) > longer {
		longer = len(rb)
	}
	if longer == 0 {
		return 1
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return 1 - float64(prev[len(rb)])/float64(longer)
}
