//! Which requests a route slices: path patterns and a size floor. Pure.

/// Which requests a route slices; the others pass through whole.
#[derive(Debug, Clone, Default)]
pub struct SliceRules {
    /// Objects smaller than this pass through whole.
    pub min_bytes: u64,
    /// Only paths matching one of these patterns are sliced (empty: all).
    pub include: Vec<String>,
    /// Paths matching one of these patterns pass through.
    pub exclude: Vec<String>,
}

impl SliceRules {
    /// Whether requests for `path` are sliced.
    pub fn slices(&self, path: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| glob(p, path)))
            && !self.exclude.iter().any(|p| glob(p, path))
    }
}

/// Whether `path` matches `pattern`, where `*` matches any run of characters.
pub fn glob(pattern: &str, path: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == path;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !path.starts_with(first) || path.len() < first.len() + last.len() || !path.ends_with(last) {
        return false;
    }
    let mut rest = &path[first.len()..path.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases = [
            ("*.mp4", "/v/a.mp4", true),
            ("*.mp4", "/v/a.mp4.txt", false),
            ("/videos/*", "/videos/a", true),
            ("/videos/*", "/video/a", false),
            ("/a/*/b/*.ts", "/a/x/y/b/z.ts", true),
            ("/exact", "/exact", true),
            ("/exact", "/exact2", false),
            ("*", "/anything", true),
            ("a*a", "a", false),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(glob(pattern, path), want, "{pattern} {path}");
        }
    }
}
