//! A `multipart/form-data` body (a file upload form), read by the guard so that its `csrf`
//! field is checked before any page sees the request; the page gets the parsed fields. Only
//! what a browser sends for a form: parts with `Content-Disposition: form-data; name="…"`
//! (and `filename="…"` for a file), separated by the boundary of the request's
//! `Content-Type`. No dependency: axum's `multipart` feature would bring `multer` and its
//! crates for these few lines.

use axum::body::Bytes;

/// One field of the form: its name, the file name for a file, its bytes.
#[derive(Clone, Debug)]
pub(crate) struct Part {
    pub(crate) name: String,
    pub(crate) filename: Option<String>,
    pub(crate) data: Bytes,
}

/// The parsed fields of a multipart POST (a request extension set by the guard).
#[derive(Clone, Debug, Default)]
pub(crate) struct Upload(pub(crate) Vec<Part>);

impl Upload {
    /// The first field named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Part> {
        self.0.iter().find(|p| p.name == name)
    }

    /// Every field named `name` (a multiple file input), in order.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Part> + 'a {
        self.0.iter().filter(move |p| p.name == name)
    }

    /// The first field named `name` as text (empty when absent or not UTF-8).
    pub(crate) fn text(&self, name: &str) -> String {
        self.get(name)
            .and_then(|p| std::str::from_utf8(&p.data).ok())
            .unwrap_or_default()
            .to_string()
    }
}

/// The boundary of a `multipart/form-data; boundary=…` content type; `None` for any other.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let kind = params.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim_matches('"').to_string())
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// A parameter (`name="…"`) of a `Content-Disposition` header value.
fn param(disposition: &str, key: &str) -> Option<String> {
    disposition
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// One part (its headers, a blank line, its bytes); `None` when it is not a form field.
fn part(body: &Bytes, start: usize, end: usize) -> Option<Part> {
    let head_end = find(&body[..end], b"\r\n\r\n", start)?;
    let head = std::str::from_utf8(&body[start..head_end]).ok()?;
    let disposition = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
        .map(|(_, v)| v.trim())?;
    if !disposition.to_ascii_lowercase().starts_with("form-data") {
        return None;
    }
    Some(Part {
        name: param(disposition, "name")?,
        filename: param(disposition, "filename"),
        data: body.slice(head_end + 4..end),
    })
}

/// The fields of a multipart body; `None` when it is not well formed (no closing boundary,
/// a part without a name).
pub(crate) fn parse(body: &Bytes, boundary: &str) -> Option<Upload> {
    let open = format!("--{boundary}");
    let sep = format!("\r\n--{boundary}");
    let mut at = find(body, open.as_bytes(), 0)? + open.len();
    let mut parts = Vec::new();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Some(Upload(parts));
        }
        if body.get(at..at + 2) != Some(b"\r\n") {
            return None;
        }
        let end = find(body, sep.as_bytes(), at + 2)?;
        parts.push(part(body, at + 2, end)?);
        at = end + sep.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boundary_comes_from_a_multipart_content_type_only() {
        let cases = [
            ("multipart/form-data; boundary=abc", Some("abc")),
            ("multipart/form-data; boundary=\"a b\"", Some("a b")),
            ("Multipart/Form-Data;boundary=x", Some("x")),
            ("multipart/form-data", None),
            ("application/x-www-form-urlencoded", None),
            ("multipart/mixed; boundary=abc", None),
        ];
        for (ct, want) in cases {
            assert_eq!(boundary(ct).as_deref(), want, "{ct}");
        }
    }

    #[test]
    fn fields_and_files_are_read_and_bad_bodies_refused() {
        let body = "--XY\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n\
--XY\r\nContent-Disposition: form-data; name=\"bundle\"; filename=\"a.bundle\"\r\n\
Content-Type: application/octet-stream\r\n\r\n\x00\r\n\x01--X\r\n--XY--\r\n";
        let u = parse(&Bytes::from(body), "XY").expect("parsed");
        assert_eq!(u.text("csrf"), "abc");
        let f = u.get("bundle").expect("file");
        assert_eq!(f.filename.as_deref(), Some("a.bundle"));
        assert_eq!(&f.data[..], b"\x00\r\n\x01--X");
        assert!(u.get("other").is_none());
        let bad = [
            "--XY\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc",
            "--XY\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--XY--",
            "--XY\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nabc\r\n--XY--",
            "no boundary here",
        ];
        for b in bad {
            assert!(parse(&Bytes::from(b), "XY").is_none(), "{b:?}");
        }
    }
}
