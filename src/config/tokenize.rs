//! httpd's config-line tokenizer (`ap_getword_conf`, CFG-01), reimplemented so
//! the raw-argument directives split words exactly as httpd would.

/// C `isspace` in the "C" locale (what `apr_isspace` tests).
pub(crate) fn is_conf_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// Splits a raw directive argument string into words with the semantics of
/// httpd's `ap_getword_conf`:
///
/// * words are separated by runs of whitespace;
/// * a word starting with `"` or `'` runs to the matching quote (or the end of
///   the line) and may contain whitespace; text right after the closing quote
///   starts a new word;
/// * inside quotes, `\<quote>` stands for the quote character;
/// * everywhere, `\\` stands for one backslash; any other backslash is kept.
///
/// An empty quoted word (`""`) yields an empty string, which callers treat like
/// a missing value.
pub fn tokenize(args: &str) -> Vec<String> {
    let b = args.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && is_conf_space(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            return words;
        }
        let quote = b[i];
        if quote == b'"' || quote == b'\'' {
            let start = i + 1;
            let mut end = start;
            while end < b.len() && b[end] != quote {
                if b[end] == b'\\' && end + 1 < b.len() && (b[end + 1] == quote || b[end + 1] == b'\\') {
                    end += 2;
                } else {
                    end += 1;
                }
            }
            words.push(unescape(&b[start..end], Some(quote)));
            i = if end < b.len() { end + 1 } else { end };
        } else {
            let start = i;
            while i < b.len() && !is_conf_space(b[i]) {
                i += 1;
            }
            words.push(unescape(&b[start..i], None));
        }
    }
}

/// httpd's `substring_conf`: drops the backslash of `\\` and, inside quotes,
/// of `\<quote>`.
fn unescape(s: &[u8], quote: Option<u8>) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let escapes_next = s[i] == b'\\' && i + 1 < s.len() && (s[i + 1] == b'\\' || Some(s[i + 1]) == quote);
        if escapes_next {
            out.push(s[i + 1]);
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    // Only ASCII backslashes were removed, so the bytes are still UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
