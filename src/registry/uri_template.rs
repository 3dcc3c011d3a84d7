//! Owns RFC 6570 level-1 URI templates: parsing `scheme://path/{var}/more` and matching a URI
//! against it, yielding the variables.

use std::collections::HashMap;

/// Why a URI template is not a level-1 RFC 6570 template this registry can match. Each names
/// the template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriTemplateError {
    /// A `{` without its `}`.
    #[error("unclosed `{{` in `{template}`")]
    Unclosed {
        /// The template.
        template: String,
    },
    /// A variable name that level 1 does not allow (empty, an operator, a modifier).
    #[error("`{{{name}}}` in `{template}` is not a level-1 variable")]
    NotLevelOne {
        /// The text between the braces.
        name: String,
        /// The template.
        template: String,
    },
    /// Two variables with nothing between them: where one ends is undecidable.
    #[error("adjacent variables in `{template}` cannot be matched")]
    AdjacentVariables {
        /// The template.
        template: String,
    },
    /// A `}` that closes nothing.
    #[error("stray `}}` in `{template}`")]
    StrayClose {
        /// The template.
        template: String,
    },
}

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
    pub(crate) fn parse(template: &str) -> Result<Self, UriTemplateError> {
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest.find('}').ok_or_else(|| UriTemplateError::Unclosed {
                        template: template.to_owned(),
                    })?;
                    let name = &rest[1..end];
                    let valid = !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                    if !valid {
                        return Err(UriTemplateError::NotLevelOne {
                            name: name.to_owned(),
                            template: template.to_owned(),
                        });
                    }
                    if matches!(parts.last(), Some(Part::Var(_))) {
                        return Err(UriTemplateError::AdjacentVariables {
                            template: template.to_owned(),
                        });
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
                        return Err(UriTemplateError::StrayClose {
                            template: template.to_owned(),
                        });
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
