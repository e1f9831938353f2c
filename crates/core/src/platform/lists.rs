//! Lists as the database stores them: space-separated (scopes, URIs, grant types).

/// The items of a space-separated list as stored (scopes, URIs, grant types).
pub fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(' ').filter(|s| !s.is_empty())
}
