//! The dashboard page, embedded in the binary so a hospital network needs
//! nothing else (no CDN) and `cargo build` needs no npm. The source lives in
//! `dashboards/ward/src/` (TypeScript, built by Vite); its build output in
//! `dashboards/ward/dist/` is committed, with fixed file names, and
//! `scripts/browser-test` fails when it no longer matches the sources
//! (docs/development.md).

use axum::Router;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::AppState;

const INDEX: &str = include_str!("../../../dashboards/ward/dist/index.html");
const APP_JS: &str = include_str!("../../../dashboards/ward/dist/app.js");
const APP_CSS: &str = include_str!("../../../dashboards/ward/dist/app.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route(
            "/app.js",
            get(|| async {
                ([("content-type", "text/javascript; charset=utf-8")], APP_JS).into_response()
            }),
        )
        .route(
            "/app.css",
            get(|| async {
                ([("content-type", "text/css; charset=utf-8")], APP_CSS).into_response()
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built page loads exactly the two assets served above, and nothing
    /// inline that the Content-Security-Policy (`script-src 'self'`,
    /// `style-src 'self'`) would block.
    #[test]
    fn the_embedded_page_loads_only_the_served_assets_and_nothing_inline() {
        assert!(
            INDEX.contains(r#"<script type="module" crossorigin src="/app.js"></script>"#),
            "{INDEX}"
        );
        assert!(
            INDEX.contains(r#"<link rel="stylesheet" crossorigin href="/app.css">"#),
            "{INDEX}"
        );
        assert_eq!(
            INDEX.matches("<script").count(),
            1,
            "one script, the bundle: {INDEX}"
        );
        assert!(!INDEX.contains("<style"), "no inline style element");
        assert!(!INDEX.contains(" style="), "no style attribute");
        assert!(
            !INDEX.contains("src=\"/src/"),
            "the build, not the Vite source page, is embedded"
        );
        assert!(
            !INDEX.contains("http://") && !INDEX.contains("https://"),
            "no other origin"
        );
        assert!(
            APP_JS.len() > 1000 && APP_CSS.len() > 100,
            "the assets are the built bundle"
        );
    }
}
