//! Owns RFC 6570 level-1 URI templates: parsing `scheme://path/{var}/more` and matching a URI
//! against it, yielding the variables.

use std::collections::HashMap;

/// A parsed level-1 template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UriTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

impl UriTemplate {
    /// Parses a template; variables are `{name}` and may not be adjacent.
    pub(crate) fn parse(template: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("unclosed `{{` in `{template}`"))?;
                    let name = &rest[1..end];
                    let valid = !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                    if !valid {
                        return Err(format!(
                            "`{{{name}}}` in `{template}` is not a level-1 variable"
                        ));
                    }
                    if matches!(parts.last(), Some(Part::Var(_))) {
                        return Err(format!(
                            "adjacent variables in `{template}` cannot be matched"
                        ));
                    }
                    parts.push(Part::Var(name.to_owned()));
                    rest = &rest[end + 1..];
                }
                Some(start) => {
                    parts.push(Part::Literal(rest[..start].to_owned()));
                    rest = &rest[start..];
                }
                None => {
                    if rest.contains('}') {
                        return Err(format!("stray `}}` in `{template}`"));
                    }
                    parts.push(Part::Literal(rest.to_owned()));
                    rest = "";
                }
            }
        }
        Ok(Self { parts })
    }

    /// The variable names, in order (only the tests ask for them).
    #[cfg(test)]
    fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Matches `uri`; each variable takes a non-empty value without `/`.
    pub(crate) fn match_uri(&self, uri: &str) -> Option<HashMap<String, String>> {
        let mut vars = HashMap::new();
        let mut rest = uri;
        let mut parts = self.parts.iter().peekable();
        while let Some(part) = parts.next() {
            match part {
                Part::Literal(lit) => rest = rest.strip_prefix(lit.as_str())?,
                Part::Var(name) => {
                    let end = match parts.peek() {
                        Some(Part::Literal(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let value = &rest[..end];
                    if value.is_empty() || value.contains('/') {
                        return None;
                    }
                    vars.insert(name.clone(), value.to_owned());
                    rest = &rest[end..];
                }
            }
        }
        rest.is_empty().then_some(vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_1_template_matches_and_yields_its_variables() {
        let t = UriTemplate::parse("test://template/{id}/data").unwrap();
        let vars = t.match_uri("test://template/123/data").unwrap();
        assert_eq!(vars["id"], "123");
        assert!(t.match_uri("test://template//data").is_none());
        assert!(t.match_uri("test://template/1/2/data").is_none());
        assert!(t.match_uri("test://template/123/datum").is_none());
        let tail = UriTemplate::parse("file:///{name}").unwrap();
        assert_eq!(tail.match_uri("file:///a.txt").unwrap()["name"], "a.txt");
        assert_eq!(t.variables().collect::<Vec<_>>(), vec!["id"]);
    }

    #[test]
    fn malformed_templates_are_refused() {
        assert!(UriTemplate::parse("x://{a").is_err());
        assert!(UriTemplate::parse("x://{a}{b}").is_err());
        assert!(UriTemplate::parse("x://{+a}").is_err());
        assert!(UriTemplate::parse("x://a}").is_err());
    }
}
