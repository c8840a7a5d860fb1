//! The dashboard page, embedded in the binary so a hospital network needs
//! nothing else (no CDN). The source lives in `dashboards/ward/`.

use axum::Router;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::AppState;

const INDEX: &str = include_str!("../../../dashboards/ward/index.html");
const APP_JS: &str = include_str!("../../../dashboards/ward/app.js");
const STYLE: &str = include_str!("../../../dashboards/ward/style.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route("/app.js", get(|| async { ([("content-type", "text/javascript; charset=utf-8")], APP_JS).into_response() }))
        .route("/style.css", get(|| async { ([("content-type", "text/css; charset=utf-8")], STYLE).into_response() }))
}
