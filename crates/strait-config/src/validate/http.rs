//! `listeners[].http`: how a listener cleans request targets and header names before routing.

use crate::raw::RawListenerHttp;
use crate::types::{EscapedSlashesAction, ListenerHttp, UnderscoresAction};

use super::{pos, Ctx};

/// The validated `http` block; every field has a safe default.
pub(super) fn listener_http(cx: &mut Ctx, raw: Option<&RawListenerHttp>) -> ListenerHttp {
    let normalize_path = raw.and_then(|h| h.normalize_path.as_ref());
    if let Some(n) = normalize_path.filter(|n| !n.value) {
        cx.warn(
            pos(n),
            "normalize_path: false: routes match the path as sent, so an encoded or dotted \
             spelling can reach an upstream path that a route was written to block",
        );
    }
    ListenerHttp {
        normalize_path: normalize_path.is_none_or(|n| n.value),
        merge_slashes: raw
            .and_then(|h| h.merge_slashes.as_ref())
            .is_none_or(|m| m.value),
        escaped_slashes: cx.token(
            raw.and_then(|h| h.path_with_escaped_slashes_action.as_ref()),
            "path_with_escaped_slashes_action",
            &[
                ("keep_unchanged", EscapedSlashesAction::KeepUnchanged),
                ("reject_request", EscapedSlashesAction::RejectRequest),
                (
                    "unescape_and_forward",
                    EscapedSlashesAction::UnescapeAndForward,
                ),
            ],
            EscapedSlashesAction::RejectRequest,
        ),
        underscores: cx.token(
            raw.and_then(|h| h.headers_with_underscores_action.as_ref()),
            "headers_with_underscores_action",
            &[
                ("allow", UnderscoresAction::Allow),
                ("drop_header", UnderscoresAction::DropHeader),
                ("reject_request", UnderscoresAction::RejectRequest),
            ],
            UnderscoresAction::DropHeader,
        ),
    }
}

#[cfg(test)]
mod tests;
