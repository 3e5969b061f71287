//! The console's stylesheet and script, compiled into the binary. Pages link them with a
//! hash of their content in the query, so browsers may keep them for good and still get a
//! new build's at once.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// One embedded file.
pub(super) struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    version: LazyLock<String>,
}

impl Asset {
    /// The URL pages link it by.
    pub(super) fn url(&self) -> String {
        format!("/console/assets/{}?v={}", self.name, *self.version)
    }
}

fn version_of(body: &str) -> String {
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

pub(super) static CSS: Asset = Asset {
    name: "console.css",
    content_type: "text/css; charset=utf-8",
    body: include_str!("assets/console.css"),
    version: LazyLock::new(|| version_of(include_str!("assets/console.css"))),
};

pub(super) static JS: Asset = Asset {
    name: "console.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("assets/console.js"),
    version: LazyLock::new(|| version_of(include_str!("assets/console.js"))),
};

#[derive(Deserialize)]
pub(super) struct Version {
    v: Option<String>,
}

/// `GET /console/assets/{file}`.
pub(super) async fn serve(Path(file): Path<String>, Query(q): Query<Version>) -> Response {
    let Some(asset) = [&CSS, &JS].into_iter().find(|a| a.name == file) else {
        return super::layout::error_page(
            StatusCode::NOT_FOUND,
            None,
            "Not found",
            "There is no such file.",
        );
    };
    let mut response = asset.body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let cache = if q.v.as_deref() == Some(asset.version.as_str()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
