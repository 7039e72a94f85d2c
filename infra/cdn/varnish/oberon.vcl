vcl 4.1;

# Oberon's CDN policy for Varnish (written for 7.1; uses only core VCL and vmod_std).
#
# It implements the origin's header contract (see infra/cdn/README.md):
#
#   page, public/volatile  Cache-Control: max-age=0, must-revalidate      (browsers only)
#                          CDN-Cache-Control: max-age=T, stale-while-revalidate=S,
#                                             stale-if-error=E           (this cache)
#                          Surrogate-Control: <same>                     (fallback)
#                          Surrogate-Key: k1 k2 ...   Cache-Tag: k1,k2   ETag
#   page, personal         Cache-Control: private, no-store              never stored
#   error (5xx)            Cache-Control: no-store                       never stored;
#                                                                        stale copy served
#   asset                  Cache-Control: max-age=31536000, immutable
#   any Set-Cookie         never stored
#   request with Cookie or Authorization: passed to the origin, never cached.
#
# Internal state between restarts travels in the request header X-Oberon-Stale
# ("retry": refresh synchronously, the stale copy is kept as a fallback; "serve":
# the refresh failed, deliver the stale copy). It is removed from every client
# request on arrival, so no client can ask for stale content. The origin sees it
# only as "X-Oberon-Stale: retry" on such a synchronous refresh.
#
# Response headers added: X-Cache (HIT, MISS, STALE, STALE-IF-ERROR, PASS), Age
# (Varnish's own). With `X-Oberon-Debug: 1` from a trusted address the CDN-only
# headers are kept and X-Oberon-TTL / X-Oberon-Grace are added.

import std;

# The deployment (or a test) writes oberon-backend.vcl, declaring `backend origin`
# with a health probe, into a directory on vcl_path. See oberon-backend.vcl.example.
include "oberon-backend.vcl";

# Who may purge and who may see the CDN-only headers: loopback only. A deployment
# that purges from elsewhere adds its addresses here.
acl oberon_trusted {
    "127.0.0.1";
    "::1";
}

# ---------------------------------------------------------------------------
# Client side
# ---------------------------------------------------------------------------

# Contract: internal control headers are never accepted from clients, nor are
# forwarding headers or request ids (the gateway believes what this cache sends); PURGE/BAN
# by surrogate key from trusted addresses; Cookie/Authorization → pass; the
# restart states of stale-if-error choose how much grace a lookup may use.
sub vcl_recv {
    set req.backend_hint = origin;

    if (req.restarts == 0) {
        # Only this VCL sets it, and only before a restart.
        unset req.http.X-Oberon-Stale;
        if (client.ip !~ oberon_trusted) {
            unset req.http.X-Oberon-Debug;
        }
        # This is the first edge, and the gateway believes what it forwards: so
        # nothing the client sent under these names goes on. The client is the
        # connection's address, not a chain it wrote (varnishd appended client.ip
        # to the client's own X-Forwarded-For; that list is replaced here). The
        # gateway makes a fresh request id, the one identity assertions are bound
        # to. The scheme is this listener's: https only on 443, where a TLS
        # terminator speaking the PROXY protocol hands connections over (so that
        # client.ip and server.ip are the client's and the one it connected to).
        set req.http.X-Forwarded-For = client.ip;
        unset req.http.X-Request-Id;
        unset req.http.X-Forwarded-Host;
        unset req.http.Forwarded;
        if (std.port(server.ip) == 443) {
            set req.http.X-Forwarded-Proto = "https";
        } else {
            unset req.http.X-Forwarded-Proto;
        }
    }

    if (req.method == "PURGE" || req.method == "BAN") {
        call oberon_purge;
    }

    if (req.http.X-Oberon-Stale == "retry") {
        # The object is past its stale-while-revalidate window: do not accept it
        # as a hit, fetch synchronously. The stale copy stays in cache (its grace
        # covers stale-if-error) in case the fetch fails.
        set req.grace = 0s;
    } elsif (req.http.X-Oberon-Stale == "serve") {
        # The fetch failed: accept the object anywhere in its own grace, which
        # vcl_backend_response set to cover stale-if-error.
        set req.grace = 3650d;
    }

    # Credentials or cookies: the response may be personal. Same as the builtin,
    # stated here because the contract depends on it.
    if (req.http.Authorization || req.http.Cookie) {
        return (pass);
    }

    # Fall through to the builtin vcl_recv (Host normalisation, method checks).
}

# Contract: `PURGE` (or `BAN`) with `Surrogate-Key: k1 k2 ...` from oberon_trusted
# bans every object whose Surrogate-Key holds any of the keys as a whole token.
# 403 from anyone else, 400 without keys or with characters outside
# [A-Za-z0-9_:@/.+-] plus { } (the renderer writes route patterns such as
# "route:/events/{id}" into keys). The ban tests obj.* only, so the ban lurker
# can apply it in the background. Every branch ends in synth.
sub oberon_purge {
    if (client.ip !~ oberon_trusted) {
        return (synth(403, "Forbidden"));
    }
    if (!req.http.Surrogate-Key || req.http.Surrogate-Key !~ "[^ \t]") {
        return (synth(400, "Surrogate-Key required"));
    }
    if (req.http.Surrogate-Key !~ "^[ \t]*[A-Za-z0-9_:@/.+{}-]+([ \t]+[A-Za-z0-9_:@/.+{}-]+)*[ \t]*$") {
        return (synth(400, "Invalid Surrogate-Key"));
    }
    # Trim, make `.`, `+`, `{`, `}` literal ([.] etc. rather than backslashes), then
    # turn the space-separated keys into an alternation. The ban argument must
    # not be quoted (std.ban would keep the quotes as part of the regex) and so
    # must not contain spaces: the validation above and [[:space:]] see to that.
    set req.http.X-Oberon-Ban = regsuball(req.http.Surrogate-Key, "^[ \t]+|[ \t]+$", "");
    set req.http.X-Oberon-Ban = regsuball(req.http.X-Oberon-Ban, "([.+{}])", "[\1]");
    set req.http.X-Oberon-Ban = regsuball(req.http.X-Oberon-Ban, "[ \t]+", "|");
    # A key matches only as a whole token: bounded by start/end or whitespace,
    # so "route:/events" does not match "route:/events/42".
    if (std.ban("obj.http.Surrogate-Key ~ " +
        "(^|[[:space:]])(" + req.http.X-Oberon-Ban + ")([[:space:]]|$)")) {
        return (synth(200, "Banned"));
    }
    return (synth(400, "Ban rejected: " + std.ban_error()));
}

# Contract: fresh → HIT; within stale-while-revalidate → deliver stale and
# refresh in the background; past it but within stale-if-error → try the origin
# synchronously and keep the stale copy for when that fails; origin known sick →
# deliver the stale copy at once.
sub vcl_hit {
    if (obj.ttl >= 0s) {
        return (deliver);
    }
    if (req.http.X-Oberon-Stale == "serve") {
        # Restarted after a failed synchronous refresh (see vcl_synth).
        return (deliver);
    }
    if (obj.ttl + std.duration(obj.http.X-Oberon-Swr, 0s) > 0s) {
        # stale-while-revalidate: Varnish starts a background fetch on delivery.
        return (deliver);
    }
    if (!std.healthy(req.backend_hint)) {
        # The probe already says the origin is down: stale-if-error right away.
        set req.http.X-Oberon-Stale = "serve";
        return (deliver);
    }
    if (req.restarts == 0) {
        set req.http.X-Oberon-Stale = "retry";
        return (restart);
    }
    return (deliver);
}

# Contract: Age and X-Cache on every response; CDN-only headers stripped unless
# a trusted debug request.
sub vcl_deliver {
    if (obj.uncacheable) {
        # pass, hit-for-miss, errors: nothing from or into the cache.
        set resp.http.X-Cache = "PASS";
    } elsif (obj.hits == 0) {
        set resp.http.X-Cache = "MISS";
    } elsif (obj.ttl >= 0s) {
        set resp.http.X-Cache = "HIT";
    } elsif (req.http.X-Oberon-Stale == "serve") {
        set resp.http.X-Cache = "STALE-IF-ERROR";
    } else {
        set resp.http.X-Cache = "STALE";
    }

    unset resp.http.X-Oberon-Swr;
    unset resp.http.X-Oberon-Url;
    unset resp.http.X-Oberon-Host;
    if (req.http.X-Oberon-Debug == "1") {
        set resp.http.X-Oberon-TTL = obj.ttl;
        set resp.http.X-Oberon-Grace = obj.grace;
    } else {
        # For the CDN only (RFC 9213 targeted field, surrogate fields, purge keys).
        unset resp.http.CDN-Cache-Control;
        unset resp.http.Surrogate-Control;
        unset resp.http.Surrogate-Key;
        unset resp.http.Cache-Tag;
    }
}

# Contract: stale-if-error. A synchronous refresh that failed (origin 5xx,
# connection refused, timeout) was abandoned by the backend side, which lands
# here as a 503: restart once and deliver the stale copy. Purge answers get a
# short plain-text body.
sub vcl_synth {
    if (req.http.X-Oberon-Stale == "retry" && resp.status >= 500) {
        set req.http.X-Oberon-Stale = "serve";
        return (restart);
    }
    if (req.method == "PURGE" || req.method == "BAN") {
        set resp.http.Content-Type = "text/plain; charset=utf-8";
        set resp.body = resp.reason + {"
"};
        return (deliver);
    }
}

# ---------------------------------------------------------------------------
# Backend side
# ---------------------------------------------------------------------------

# Contract: the debug switch is the CDN's, not the origin's. X-Oberon-Stale
# stays on the backend request (only ever "retry", set by vcl_hit): the backend
# subs need it to know that a stale copy backs this fetch, and VCL 7.1 has no
# other place to carry that. The origin ignores it.
sub vcl_backend_fetch {
    unset bereq.http.X-Oberon-Debug;
    if (bereq.http.X-Oberon-Stale != "retry") {
        unset bereq.http.X-Oberon-Stale;
    }
}

# Contract: the CDN's TTL comes from CDN-Cache-Control, else Surrogate-Control,
# else Cache-Control; a targeted field that is empty or not a Structured Field
# dictionary is ignored as if absent (RFC 9213 §2.1). Its max-age counts from
# when the response was generated: Age is subtracted (RFC 9111 §4.2.3).
# private/no-store/no-cache in the chosen targeted field, private/no-store/no-cache
# in Cache-Control when there is none, Cache-Control without explicit freshness
# (no max-age, s-maxage or Expires: nothing is cached on a guess), Set-Cookie, or
# `*` among Vary's names → hit-for-miss (never served to anyone else). A non-error
# answer to an unsafe method invalidates what is stored for its URL (RFC 9111
# §4.4). Errors never replace a cached object.
sub vcl_backend_response {
    # Set only here; never trusted from the origin.
    unset beresp.http.X-Oberon-Swr;
    unset beresp.http.X-Oberon-Policy;
    unset beresp.http.X-Oberon-Value;
    unset beresp.http.X-Oberon-Url;
    unset beresp.http.X-Oberon-Host;

    if (bereq.method != "GET" && bereq.method != "HEAD" && bereq.method != "OPTIONS" &&
        bereq.method != "TRACE" && beresp.status < 400) {
        call oberon_invalidate;
    }

    if (bereq.uncacheable) {
        # A pass (Cookie/Authorization, non-GET): nothing is stored anyway.
        return (deliver);
    }

    if (beresp.status >= 500) {
        if (bereq.is_bgfetch || bereq.http.X-Oberon-Stale == "retry") {
            # A refresh failed while a stale copy exists: keep that object as it
            # is (any delivered response, even uncacheable, would supersede it).
            # A background fetch just ends; a synchronous one lands in vcl_synth,
            # which restarts and serves the stale copy.
            return (abandon);
        }
        # No stale copy: the origin's error goes to this request only.
        set beresp.ttl = 0s;
        set beresp.grace = 0s;
        set beresp.keep = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }

    if (beresp.http.Set-Cookie) {
        call oberon_hit_for_miss;
    }

    # `Vary: *` (also among other names, or on another Vary line): the response
    # varies on something outside the request, so no stored copy may answer one.
    if (beresp.http.Vary) {
        std.collect(beresp.http.Vary);
        if (beresp.http.Vary ~ "(^|,)[ \t]*\*[ \t]*(,|$)") {
            call oberon_hit_for_miss;
        }
    }

    # The object's own URL and host, for oberon_invalidate's ban (stripped on delivery).
    set beresp.http.X-Oberon-Url = bereq.url;
    if (bereq.http.Host) {
        set beresp.http.X-Oberon-Host = bereq.http.Host;
    }

    # The first valid targeted field, in X-Oberon-Policy.
    if (beresp.http.CDN-Cache-Control) {
        std.collect(beresp.http.CDN-Cache-Control);
        set beresp.http.X-Oberon-Policy = beresp.http.CDN-Cache-Control;
        call oberon_structured_dictionary;
    }
    if (!beresp.http.X-Oberon-Policy && beresp.http.Surrogate-Control) {
        std.collect(beresp.http.Surrogate-Control);
        set beresp.http.X-Oberon-Policy = beresp.http.Surrogate-Control;
        call oberon_structured_dictionary;
    }
    if (beresp.http.X-Oberon-Policy) {
        call oberon_targeted_policy;
    }

    # No (valid) targeted field: Varnish has already set ttl (and grace from a
    # Cache-Control stale-while-revalidate) from Cache-Control/Expires/Age, or
    # default_ttl when they say nothing, which is a guess this cache does not make.
    if (beresp.http.Cache-Control ~ "(?i)(^|[\s,])(private|no-store|no-cache)([\s,=]|$)" ||
        beresp.ttl <= 0s ||
        (beresp.http.Cache-Control !~ "(?i)(^|[\s,])(max-age|s-maxage)[\s]*=" &&
         !beresp.http.Expires)) {
        call oberon_hit_for_miss;
    }
    set beresp.http.X-Oberon-Swr = beresp.grace + "s";
    return (deliver);
}

# RFC 9111 §4.4: a non-error answer to an unsafe method invalidates the stored
# responses of its target URI (every variant). A ban on the object's own
# X-Oberon-Url/X-Oberon-Host tests obj.* only, so the lurker can apply it in the
# background; lookups test it at once. The URL cannot hold whitespace (it comes
# from the request line), and a Host that is not a plain host[:port] only widens
# the ban to the URL on every host, so neither can add terms to the expression.
sub oberon_invalidate {
    if (bereq.http.Host ~ "^[A-Za-z0-9.:\[\]-]+$") {
        if (!std.ban("obj.http.X-Oberon-Url == " + bereq.url +
            " && obj.http.X-Oberon-Host == " + bereq.http.Host)) {
            std.log("oberon: invalidation after " + bereq.method + " rejected: " + std.ban_error());
        }
    } elsif (!std.ban("obj.http.X-Oberon-Url == " + bereq.url)) {
        std.log("oberon: invalidation after " + bereq.method + " rejected: " + std.ban_error());
    }
}

# X-Oberon-Policy is a targeted field's value (all its lines, joined by ", "):
# keep it only if it parses as a non-empty RFC 8941 dictionary (keys lowercase,
# OWS only around commas, integers of at most 15 digits, parameters allowed), so
# that a field a parser would reject is ignored rather than half-read. Its strings
# are then emptied (`""`), so that commas and `=` inside them cannot be taken for
# members by oberon_targeted_policy's patterns.
sub oberon_structured_dictionary {
    if (beresp.http.X-Oberon-Policy !~ {"(?x)
        (?(DEFINE)
          (?<key>    [a-z*][a-z0-9_.*-]* )
          (?<bare>   -?[0-9]{1,12}\.[0-9]{1,3}
                   | -?[0-9]{1,15}
                   | "(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"
                   | [A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*
                   | :[A-Za-z0-9+/=]*:
                   | \?[01] )
          (?<params> (?:;\x20*(?&key)(?:=(?&bare))?)* )
          (?<item>   (?&bare)(?&params) )
          (?<inner>  \(\x20*(?:(?&item)(?:\x20+(?&item))*\x20*)?\)(?&params) )
          (?<member> (?&key)(?:=(?:(?&item)|(?&inner))|(?&params)) )
        )
        ^[\x20\t]*(?&member)(?:[\x20\t]*,[\x20\t]*(?&member))*[\x20\t]*$"}) {
        unset beresp.http.X-Oberon-Policy;
    } else {
        set beresp.http.X-Oberon-Policy =
            regsuball(beresp.http.X-Oberon-Policy, {""(?:[^"\\]|\\.)*""}, {""""});
    }
}

# TTL, stale-while-revalidate and stale-if-error from the targeted field (a
# valid dictionary in beresp.http.X-Oberon-Policy, see above). A directive is
# the last member of its name (a later duplicate wins); its parameters are
# ignored. s-maxage, max-age, stale-while-revalidate and stale-if-error count
# only as non-negative integers; private/no-store/no-cache count unless false
# (`=?0`). The TTL is s-maxage, else max-age, less the response's Age. The
# object's grace covers the longer of the two windows; the stale-while-revalidate
# part is remembered in X-Oberon-Swr for vcl_hit (stripped on delivery).
sub oberon_targeted_policy {
    if (beresp.http.X-Oberon-Policy ~ {"(?x)
          (?:^|,)[ \t]*(private|no-store|no-cache)(?=[=; \t,]|$)  # a member of one of them
          (?!=\?0[ \t]*(?:[;,]|$))                                # that is not false
          (?!.*,[ \t]*\1(?:[=; \t,]|$))                           # nor followed by another"}) {
        call oberon_hit_for_miss;
    }

    # Each regsub leaves the value of the last member of that name (or nothing)
    # in X-Oberon-Value, which oberon_delta_seconds turns into a duration.
    # s-maxage, for shared caches, overrides max-age (RFC 9111 §5.2.2.10).
    set beresp.http.X-Oberon-Value = regsub(beresp.http.X-Oberon-Policy,
        "^(?:(?:.*,)?[ \t]*s-maxage(?:=([^,;]*))?(?:;[^,]*)?[ \t]*(?:,.*)?|.*)$", "\1");
    call oberon_delta_seconds;
    if (!beresp.http.X-Oberon-Value) {
        set beresp.http.X-Oberon-Value = regsub(beresp.http.X-Oberon-Policy,
            "^(?:(?:.*,)?[ \t]*max-age(?:=([^,;]*))?(?:;[^,]*)?[ \t]*(?:,.*)?|.*)$", "\1");
        call oberon_delta_seconds;
    }
    if (!beresp.http.X-Oberon-Value) {
        # A targeted field without freshness: do not fall back on Cache-Control.
        call oberon_hit_for_miss;
    }
    # beresp.ttl is what remains from now: the response is already Age old.
    set beresp.ttl = std.duration(beresp.http.X-Oberon-Value, 0s) - beresp.age;
    if (beresp.ttl <= 0s) {
        call oberon_hit_for_miss;
    }

    set beresp.http.X-Oberon-Value = regsub(beresp.http.X-Oberon-Policy,
        "^(?:(?:.*,)?[ \t]*stale-while-revalidate(?:=([^,;]*))?(?:;[^,]*)?[ \t]*(?:,.*)?|.*)$", "\1");
    call oberon_delta_seconds;
    set beresp.grace = std.duration(beresp.http.X-Oberon-Value, 0s);
    set beresp.http.X-Oberon-Swr = beresp.grace + "s";
    set beresp.http.X-Oberon-Value = regsub(beresp.http.X-Oberon-Policy,
        "^(?:(?:.*,)?[ \t]*stale-if-error(?:=([^,;]*))?(?:;[^,]*)?[ \t]*(?:,.*)?|.*)$", "\1");
    call oberon_delta_seconds;
    if (std.duration(beresp.http.X-Oberon-Value, 0s) > beresp.grace) {
        set beresp.grace = std.duration(beresp.http.X-Oberon-Value, 0s);
    }

    unset beresp.http.X-Oberon-Policy;
    unset beresp.http.X-Oberon-Value;
    return (deliver);
}

# X-Oberon-Value, a member's value: a non-negative Integer becomes a duration
# ("<n>s"), at most 2^31 s (RFC 9111 §1.2.2: a larger delta-seconds means 2^31);
# anything else (bare, negative, decimal, string, token, inner list) is no value.
sub oberon_delta_seconds {
    if (beresp.http.X-Oberon-Value ~ "^[0-9]{1,15}[ \t]*$") {
        set beresp.http.X-Oberon-Value =
            regsub(beresp.http.X-Oberon-Value, "^0*([0-9]+?)[ \t]*$", "\1s");
        if (std.duration(beresp.http.X-Oberon-Value, 0s) > 2147483648s) {
            set beresp.http.X-Oberon-Value = "2147483648s";
        }
    } else {
        unset beresp.http.X-Oberon-Value;
    }
}

# Not storable for sharing: a short hit-for-miss marker (requests for the URL
# skip the waiting list and fetch on their own; a later cacheable answer is
# stored normally).
sub oberon_hit_for_miss {
    unset beresp.http.X-Oberon-Policy;
    unset beresp.http.X-Oberon-Value;
    unset beresp.http.X-Oberon-Swr;
    set beresp.ttl = 30s;
    set beresp.grace = 0s;
    set beresp.uncacheable = true;
    return (deliver);
}

# Contract: origin unreachable (refused, timeout, probe says sick). A failed
# refresh never replaces the good object: abandon it (vcl_synth then serves the
# stale copy to a synchronous request). Otherwise Varnish's 503, to this request
# only.
sub vcl_backend_error {
    if (bereq.is_bgfetch || bereq.http.X-Oberon-Stale == "retry") {
        return (abandon);
    }
    set beresp.ttl = 0s;
    set beresp.grace = 0s;
    set beresp.keep = 0s;
    set beresp.uncacheable = true;
}
