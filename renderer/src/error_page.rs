//! The site's own error pages: what the renderer answers when no page of the site can —
//! 404 when no page has the path, 503 when a page's critical component failed — in the
//! site's look, from the layout `[errors] layout` names in `site.toml`.
//!
//! Each is rendered once, when the site loads, from its layout alone: no component runs
//! for it, so nothing on it can fail or be slow when it is needed. A site without one
//! answers in plain text. Neither is ever stored (`no-store`): a missing page may be
//! published a moment later, and an unavailable one is expected back shortly.

use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::config::ConfigError;
use crate::site::SiteSource;

/// An answer the renderer gives itself, when no page of the site can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteError {
    /// No page of the site has the path.
    NotFound,
    /// The page's critical component failed: the page cannot be served without it.
    Unavailable,
}

impl SiteError {
    pub fn status(self) -> StatusCode {
        match self {
            SiteError::NotFound => StatusCode::NOT_FOUND,
            SiteError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The page's heading, given to the layout as `title`.
    fn title(self) -> &'static str {
        match self {
            SiteError::NotFound => "Page not found",
            SiteError::Unavailable => "This page is unavailable right now",
        }
    }

    /// One sentence under the heading, given to the layout as `message`.
    fn message(self) -> &'static str {
        match self {
            SiteError::NotFound => {
                "There is no page at this address. It may have moved, or the link may be mistyped."
            }
            SiteError::Unavailable => {
                "Part of this page could not be loaded. Please try again in a moment."
            }
        }
    }

    /// The answer of a site without an error layout.
    fn plain(self) -> &'static str {
        match self {
            SiteError::NotFound => "not found\n",
            SiteError::Unavailable => "this page is temporarily unavailable\n",
        }
    }
}

/// The site's error pages, rendered at load (or none: plain text).
#[derive(Debug, Default)]
pub struct ErrorPages {
    /// By [`SiteError`], in its order.
    html: Option<[String; 2]>,
}

impl ErrorPages {
    /// Render the layout `[errors] layout` names, once for each [`SiteError`]. A layout
    /// the site does not have, or one that fails to render, is a configuration error
    /// located in `site.toml`.
    pub fn render(source: &SiteSource) -> Result<Self, ConfigError> {
        let Some(layout) = &source.config.errors.layout else {
            return Ok(Self::default());
        };
        let site_toml = source.dir.join("site.toml");
        let located = |message: String| {
            ConfigError::new(&site_toml, message).at(&source.site_toml, layout.span().start)
        };
        let name = layout.get_ref();
        if !source.layouts.contains(name) {
            return Err(located(format!(
                "[errors] layout {name:?} is not one of the site's layouts"
            ))
            .help(format!(
                "use one of the site's layouts: {}",
                source.layouts.names().join(", ")
            )));
        }
        let render = |error: SiteError| {
            source
                .layouts
                .render_error(
                    name,
                    error.status().as_u16(),
                    error.title(),
                    error.message(),
                    &source.config.locale,
                )
                .map_err(|e| {
                    located(format!("[errors] layout {name:?} does not render: {e}")).help(
                        "it is given `status`, `title`, `message` and `lang`, and nothing else",
                    )
                })
        };
        Ok(Self {
            html: Some([
                render(SiteError::NotFound)?,
                render(SiteError::Unavailable)?,
            ]),
        })
    }

    /// The answer for `error`: its status, headers and body.
    pub fn answer(&self, error: SiteError) -> (StatusCode, HeaderMap, String) {
        let (content_type, body) = match &self.html {
            Some(pages) => ("text/html; charset=utf-8", pages[error as usize].clone()),
            None => ("text/plain; charset=utf-8", error.plain().to_string()),
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        (error.status(), headers, body)
    }
}
