//! The page a browser gets for `GET /` (`Accept: text/html`): the books in a table and
//! the routes, as Django REST framework's browsable API shows them. Every value from the
//! data is escaped.

use crate::store::Book;
use std::fmt::Write;

/// `&`, `<`, `>`, `"` and `'` as entities: safe in text and in quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page.
pub fn page(books: &[Book]) -> String {
    let mut rows = String::new();
    for b in books {
        // Writing to a String cannot fail.
        let _ = writeln!(
            rows,
            "<tr><td><a href=\"/books/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&b.title),
            escape(&b.subtitle),
            escape(&b.author),
            escape(&b.isbn),
            id = b.id,
        );
    }
    if books.is_empty() {
        rows.push_str("<tr><td colspan=\"5\">No books yet: POST one to /books.</td></tr>\n");
    }
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Library API</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .4rem .6rem; text-align: left; }}
code {{ background: #f4f4f4; padding: 0 .2rem; }}
</style>
</head>
<body>
<h1>Library API</h1>
<p>{count} book{plural}. This page is for browsers; other clients get JSON.</p>
<table>
<thead><tr><th>id</th><th>title</th><th>subtitle</th><th>author</th><th>isbn</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
<h2>Routes</h2>
<ul>
<li><code>GET /books</code> lists the books, <code>POST /books</code> creates one</li>
<li><code>GET</code>, <code>PUT</code>, <code>PATCH</code>, <code>DELETE /books/{{id}}</code> show, replace, change and delete one</li>
</ul>
</body>
</html>
"#,
        count = books.len(),
        plural = if books.len() == 1 { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let book = Book {
            id: 7,
            title: "<script>alert('x')</script>".into(),
            subtitle: "Tom & \"Jerry\"".into(),
            author: "A".into(),
            isbn: "1".into(),
        };
        let page = page(&[book]);
        assert!(page.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"));
        assert!(page.contains("Tom &amp; &quot;Jerry&quot;"));
        assert!(!page.contains("<script>"));
    }
}
