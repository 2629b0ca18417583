//! `/api/docs`: poem-openapi's Swagger UI page, with a Content-Security-Policy of its own.
//!
//! The page inlines its scripts (the Swagger UI bundle and a start-up script), which natter's
//! site-wide policy (`script-src 'self'`) forbids. Rather than allowing every inline script, this
//! one route lists the SHA-256 of exactly the scripts it carries, computed once at start: an
//! injected script would still be refused. Every other page keeps the strict policy (the
//! middleware only adds its CSP where a handler has not set one).

use base64::{Engine, engine::general_purpose::STANDARD};
use poem::{
    Endpoint, Response,
    endpoint::make_sync,
    http::{HeaderValue, header},
};
use sha2::{Digest, Sha256};

/// Serves `html` (the Swagger UI page) with a policy allowing exactly its own inline scripts.
pub fn page(html: &str) -> impl Endpoint + use<> {
    let html = dress(html);
    let csp = HeaderValue::from_str(&policy(&html))
        .unwrap_or(HeaderValue::from_static("default-src 'none'"));
    let body = bytes::Bytes::from(html);
    make_sync(move |_| {
        Response::builder()
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .header(header::CONTENT_SECURITY_POLICY, csp.clone())
            .body(body.clone())
    })
}

/// poem-openapi's page is bare: no doctype (so quirks mode), no language, no viewport (phones
/// show it zoomed out), no icon (so browsers ask for `/favicon.ico`, a 404 in the console), and
/// the title "Swagger UI". This gives it natter's. Its scripts are untouched.
fn dress(html: &str) -> String {
    let head = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n    \
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n    \
         <link rel=\"icon\" type=\"image/svg+xml\" href=\"{}\">",
        crate::assets::url("icon.svg")
    );
    html.trim_start()
        .replacen("<html charset=\"UTF-8\">\n<head>", &head, 1)
        .replacen("<title>Swagger UI</title>", "<title>natter API</title>", 1)
}

/// The docs page's policy: its inline scripts by hash; inline styles (Swagger UI sets them from
/// script); requests only to natter itself ("Try it out" calls the API); no frames, no forms
/// elsewhere.
fn policy(html: &str) -> String {
    let scripts: Vec<String> = inline_scripts(html)
        .into_iter()
        .map(|script| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(script))))
        .collect();
    format!(
        "default-src 'none'; script-src {}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        scripts.join(" ")
    )
}

/// The text of every inline `<script>` element (what a CSP hash covers). A script's text ends at
/// the first `</script>`, whatever it contains (the Swagger bundle mentions `<script` itself).
fn inline_scripts(html: &str) -> Vec<&str> {
    let mut scripts = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let tag = &rest[start + "<script".len()..];
        let Some((attributes, body)) = tag.split_once('>') else {
            break;
        };
        let Some((text, after)) = body.split_once("</script>") else {
            break;
        };
        if !attributes.contains("src=") {
            scripts.push(text);
        }
        rest = after;
    }
    scripts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inline_script_is_allowed_by_its_hash_and_nothing_else() {
        let html = "<head><script charset=\"UTF-8\">var a = 1;</script></head>\
                    <body><script src=\"/x.js\"></script><script>\nstart();\n</script></body>";
        assert_eq!(inline_scripts(html), ["var a = 1;", "\nstart();\n"]);
        let tricky = "<script>x = '<script>';</script><p><script>y</script>";
        assert_eq!(inline_scripts(tricky), ["x = '<script>';", "y"]);
        let csp = policy(html);
        let hash = STANDARD.encode(Sha256::digest("var a = 1;"));
        assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
        let script_src = csp
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .unwrap();
        assert!(!script_src.contains("unsafe"), "{script_src}");
        assert!(csp.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn the_docs_page_is_a_standards_mode_page_with_natters_title_and_icon() {
        let html = dress(&poem_openapi::OpenApiService::new((), "t", "1").swagger_ui_html());
        assert!(
            html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">\n<head>"),
            "{}",
            &html[..200]
        );
        assert!(html.contains("name=\"viewport\""));
        assert!(
            html.contains("<link rel=\"icon\" type=\"image/svg+xml\" href=\"/assets/icon.svg?v=")
        );
        assert!(html.contains("<title>natter API</title>"));
        assert_eq!(inline_scripts(&html).len(), 2);
    }
}
