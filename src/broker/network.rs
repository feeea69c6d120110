//! `network/*`: the host and port a URL names, which the `network.http` scope is checked on.
//! Requests themselves are not carried yet: once the scope allows one, it answers `Unsupported`
//! ([`CallError::NetworkUnsupported`](super::error::CallError::NetworkUnsupported)).

/// The host and port of a URL, the host lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// The host and port of an `http`/`https` (or `ws`/`wss`) URL; `None` for anything else.
pub(crate) fn host_and_port(url: &str) -> Option<HostPort> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        _ => return None,
    };
    // A backslash ends the authority for WHATWG URL parsers, which is what fetch uses.
    let authority = rest.split(['/', '?', '#', '\\']).next()?;
    // Credentials in the URL are not part of the host.
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(']') || host.ends_with(']') => {
            (host, port.parse().ok()?)
        }
        _ => (authority, default_port),
    };
    (!host.is_empty()).then(|| HostPort {
        host: host.to_ascii_lowercase(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_yield_host_and_port() {
        let table = [
            (
                "https://api.github.com/repos",
                Some(("api.github.com", 443)),
            ),
            ("http://Example.COM:8080/x?y", Some(("example.com", 8080))),
            ("https://user:pw@evil.com/", Some(("evil.com", 443))),
            ("https://good.com@evil.com/", Some(("evil.com", 443))),
            (
                "https://evil.com\\@api.example.com/",
                Some(("evil.com", 443)),
            ),
            ("wss://a.b", Some(("a.b", 443))),
            ("ftp://a.b", None),
            ("https://a.b:notaport/", None),
            ("https:///path", None),
            ("not a url", None),
        ];
        for (url, expected) in table {
            let got = host_and_port(url);
            assert_eq!(
                got.as_ref().map(|t| (t.host.as_str(), t.port)),
                expected,
                "{url}"
            );
        }
    }
}
