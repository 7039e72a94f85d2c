//! Builders for [`Metadata`], [`Fragment`] and [`HeadEntry`].

use crate::{Cacheability, Fragment, HeadEntry, Metadata};

impl Metadata {
    /// Metadata for the component `name`: no topics, no assets, [`Cacheability::Public`],
    /// never reused.
    pub fn new(name: impl Into<String>) -> Self {
        Metadata {
            name: name.into(),
            subscribes: Vec::new(),
            publishes: Vec::new(),
            assets: Vec::new(),
            cacheability: Cacheability::Public,
            reuse: None,
        }
    }

    /// Adds topics the component reads with [`crate::bus::get`].
    pub fn subscribes<I, S>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subscribes.extend(topics.into_iter().map(Into::into));
        self
    }

    /// Adds topics the component writes with [`crate::bus::publish`].
    pub fn publishes<I, S>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.publishes.extend(topics.into_iter().map(Into::into));
        self
    }

    /// Adds client-side files shipped with the component (relative to its asset root).
    pub fn assets<I, S>(mut self, assets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.assets.extend(assets.into_iter().map(Into::into));
        self
    }

    /// Sets the cacheability class.
    pub fn cacheability(mut self, cacheability: Cacheability) -> Self {
        self.cacheability = cacheability;
        self
    }

    /// Declares that the renderer may reuse a render of this component for `seconds`
    /// (1 to 86400; 0 means never) for requests with the same inputs. Only for a
    /// component whose render is a pure function of its inputs: see the crate's
    /// documentation, "Reuse", for what such a component must not do.
    pub fn reuse(mut self, seconds: u32) -> Self {
        self.reuse = (seconds > 0).then_some(seconds);
        self
    }
}

impl Fragment {
    /// A fragment with this HTML and no head entries. The HTML is used as is:
    /// escape interpolated data with [`crate::html::escape`].
    pub fn html(html: impl Into<String>) -> Self {
        Fragment {
            html: html.into(),
            head: Vec::new(),
        }
    }

    /// A fragment with no HTML and no head entries.
    pub fn empty() -> Self {
        Fragment::html(String::new())
    }

    /// Adds a head entry.
    pub fn with_head(mut self, entry: HeadEntry) -> Self {
        self.head.push(entry);
        self
    }
}

impl HeadEntry {
    /// A head element `<tag>` with no attributes and no content.
    pub fn new(tag: impl Into<String>) -> Self {
        HeadEntry {
            tag: tag.into(),
            attrs: Vec::new(),
            content: None,
        }
    }

    /// Adds an attribute. Values are raw text: the host escapes them.
    pub fn attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attrs.push((name.into(), value.into()));
        self
    }

    /// Sets the element's text content (raw text: the host escapes it).
    pub fn content(mut self, content: impl Into<String>) -> Self {
        self.content = Some(content.into());
        self
    }

    /// `<title>{title}</title>`.
    pub fn title(title: impl Into<String>) -> Self {
        HeadEntry::new("title").content(title)
    }

    /// `<meta name="{name}" content="{content}">`.
    pub fn meta_name(name: impl Into<String>, content: impl Into<String>) -> Self {
        HeadEntry::new("meta")
            .attr("name", name)
            .attr("content", content)
    }

    /// `<meta property="{property}" content="{content}">` (Open Graph and the like).
    pub fn meta_property(property: impl Into<String>, content: impl Into<String>) -> Self {
        HeadEntry::new("meta")
            .attr("property", property)
            .attr("content", content)
    }

    /// `<link rel="{rel}" href="{href}">`.
    pub fn link(rel: impl Into<String>, href: impl Into<String>) -> Self {
        HeadEntry::new("link").attr("rel", rel).attr("href", href)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_builder() {
        let m = Metadata::new("ticket-picker")
            .subscribes(["event"])
            .publishes(vec![String::from("ticket-selection")])
            .assets(["ticket-picker.js"])
            .cacheability(Cacheability::Volatile);
        assert_eq!(m.name, "ticket-picker");
        assert_eq!(m.subscribes, ["event"]);
        assert_eq!(m.publishes, ["ticket-selection"]);
        assert_eq!(m.assets, ["ticket-picker.js"]);
        assert!(matches!(m.cacheability, Cacheability::Volatile));
        assert_eq!(m.reuse, None);

        let d = Metadata::new("x");
        assert!(d.subscribes.is_empty() && d.publishes.is_empty() && d.assets.is_empty());
        assert!(matches!(d.cacheability, Cacheability::Public));
        assert_eq!(d.reuse, None);

        assert_eq!(Metadata::new("x").reuse(60).reuse, Some(60));
        assert_eq!(Metadata::new("x").reuse(60).reuse(0).reuse, None);
    }

    #[test]
    fn fragment_and_head_builders() {
        let f = Fragment::html("<p>x</p>")
            .with_head(HeadEntry::title("T"))
            .with_head(HeadEntry::meta_name("description", "D"))
            .with_head(HeadEntry::link("stylesheet", "/a.css"));
        assert_eq!(f.html, "<p>x</p>");
        assert_eq!(f.head.len(), 3);
        assert_eq!(f.head[0].tag, "title");
        assert_eq!(f.head[0].content.as_deref(), Some("T"));
        assert!(f.head[0].attrs.is_empty());
        assert_eq!(f.head[1].tag, "meta");
        assert_eq!(
            f.head[1].attrs,
            [
                ("name".to_string(), "description".to_string()),
                ("content".to_string(), "D".to_string())
            ]
        );
        assert_eq!(f.head[1].content, None);
        assert_eq!(f.head[2].tag, "link");
        assert_eq!(
            f.head[2].attrs,
            [
                ("rel".to_string(), "stylesheet".to_string()),
                ("href".to_string(), "/a.css".to_string())
            ]
        );
        assert!(Fragment::empty().html.is_empty());
    }
}
