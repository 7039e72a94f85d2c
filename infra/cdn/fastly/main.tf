# Oberon behind Fastly: the production twin of infra/cdn/varnish/oberon.vcl.
#
# Fastly reads the origin's Surrogate-Control natively (max-age, stale-while-revalidate,
# stale-if-error take precedence over Cache-Control), so the snippets below only add what
# the header contract needs beyond that: pass on credentials, never store personal or
# cookie-setting answers, serve stale instead of origin errors, and keep the CDN-only
# headers away from browsers. Purging is Fastly's native surrogate-key purge (see outputs).

resource "fastly_service_vcl" "oberon" {
  name    = var.service_name
  comment = "Oberon gateway + renderer (managed by Terraform, infra/cdn/fastly)"

  # Nothing without explicit caching headers is cached; every origin answer carries them.
  default_ttl = 0

  # Service-wide fallback for answers that carry no stale-if-error of their own.
  stale_if_error     = true
  stale_if_error_ttl = var.stale_if_error_ttl

  domain {
    name    = var.domain
    comment = "Oberon public host"
  }

  backend {
    name                  = "oberon_gateway"
    address               = var.origin_address
    port                  = var.origin_port
    override_host         = var.origin_host_header
    use_ssl               = true
    ssl_check_cert        = true
    ssl_cert_hostname     = var.origin_address
    ssl_sni_hostname      = var.origin_address
    min_tls_version       = "1.2"
    shield                = var.shield
    healthcheck           = "gateway_readyz"
    connect_timeout       = 1000
    first_byte_timeout    = 30000
    between_bytes_timeout = 10000
  }

  # A dead or draining gateway is noticed within a few seconds; while it is sick Fastly
  # serves stale objects within their stale-if-error window.
  healthcheck {
    name              = "gateway_readyz"
    host              = coalesce(var.origin_host_header, var.origin_address)
    path              = "/_gateway/readyz"
    method            = "GET"
    expected_response = 200
    check_interval    = 2000
    timeout           = 1000
    window            = 5
    threshold         = 3
    initial           = 3
    headers           = ["X-Origin-Verify: ${var.origin_verify_secret}"]
  }

  # Every request over TLS: a plain-HTTP request is redirected to HTTPS before anything
  # else, so X-Forwarded-Proto below is always the truth.
  request_setting {
    name      = "force_tls"
    force_ssl = true
  }

  # The gateway believes the forwarding headers and the request id of the CDN, so none
  # may be the client's. At the first Fastly node a request meets (the edge; with
  # shielding the shield sees visits > 0 and keeps what the edge set): the client is
  # the connection's address, not a chain it wrote; the request id is new (identity
  # assertions are bound to it); the scheme is the connection's; the host is the
  # gateway's own view. Behind a shield the gateway sees "client, edge" in
  # X-Forwarded-For and walks it right to left past Fastly's addresses (its
  # trusted_hops).
  snippet {
    name     = "oberon_recv_client_facts"
    type     = "recv"
    priority = 5
    content  = <<-VCL
      if (fastly.ff.visits_this_service == 0 && req.restarts == 0) {
        set req.http.X-Forwarded-For = client.ip;
        set req.http.Fastly-Client-IP = client.ip;
        set req.http.X-Request-Id = uuid.version4();
        if (req.is_ssl) {
          set req.http.X-Forwarded-Proto = "https";
        } else {
          set req.http.X-Forwarded-Proto = "http";
        }
        unset req.http.X-Forwarded-Host;
        unset req.http.Forwarded;
      }
    VCL
  }

  # Proves to the gateway that a request came through this service. Set in vcl_recv, so
  # whatever a client sent under that name is overwritten.
  header {
    name        = "origin verify"
    type        = "request"
    action      = "set"
    destination = "http.X-Origin-Verify"
    source      = "\"${var.origin_verify_secret}\""
    priority    = 10
  }

  # Requests with credentials or cookies may get personal answers: never from the cache.
  snippet {
    name     = "oberon_recv_pass_credentials"
    type     = "recv"
    priority = 10
    content  = <<-VCL
      if (req.http.Authorization || req.http.Cookie) {
        return(pass);
      }
    VCL
  }

  # What may be stored. The TTL and the stale windows themselves come from
  # Surrogate-Control (Fastly's native handling); this only refuses and rescues.
  snippet {
    name     = "oberon_fetch_policy"
    type     = "fetch"
    priority = 10
    content  = <<-VCL
      # stale-if-error: an origin error never replaces a good object. Serve the stale
      # copy if there is one; otherwise hand the error on without storing it.
      if (beresp.status >= 500 && beresp.status < 600) {
        if (stale.exists) {
          return(deliver_stale);
        }
        set beresp.cacheable = false;
        return(deliver);
      }

      # Anything setting a cookie is for one client only.
      if (beresp.http.Set-Cookie) {
        set beresp.ttl = 30s;
        return(pass);
      }

      # `Vary: *`, also among other names: the answer varies on something outside the
      # request, so no stored copy may answer another one (RFC 9111 §4.1).
      if (beresp.http.Vary ~ "(^|,)[ \t]*\*[ \t]*(,|$)") {
        set beresp.ttl = 30s;
        return(pass);
      }

      # A targeted field that is empty or not an RFC 8941 dictionary is ignored, as
      # if absent (RFC 9213 §2.1): the pattern is oberon.vcl's
      # (oberon_structured_dictionary; tests/e2e checks they are the same). Fastly
      # has already taken the TTL from it, so take it from Cache-Control instead,
      # less Age, as Fastly itself does.
      if (beresp.http.Surrogate-Control && beresp.http.Surrogate-Control !~ {"(?x)
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
        unset beresp.http.Surrogate-Control;
        set beresp.ttl = 0s;
        if (beresp.http.Cache-Control ~ "(?i)(?:^|[\s,])s-maxage[\s]*=[\s]*([0-9]{1,10})(?:[\s,]|$)") {
          set beresp.ttl += std.atoi(re.group.1);
        } else if (beresp.http.Cache-Control ~ "(?i)(?:^|[\s,])max-age[\s]*=[\s]*([0-9]{1,10})(?:[\s,]|$)") {
          set beresp.ttl += std.atoi(re.group.1);
        }
        set beresp.ttl -= std.atoi(beresp.http.Age);
      }

      # The (valid) targeted field decides when present; otherwise Cache-Control's
      # private, no-store or no-cache (personal pages) does.
      if (beresp.http.Surrogate-Control) {
        if (beresp.http.Surrogate-Control ~ "(?i)(private|no-store|no-cache)") {
          set beresp.ttl = 30s;
          return(pass);
        }
      } else if (beresp.http.Cache-Control ~ "(?i)(private|no-store|no-cache)") {
        set beresp.ttl = 30s;
        return(pass);
      }

      # Immutable, content-addressed assets: any copy is correct for as long as it
      # exists, so it may always stand in for an origin error.
      if (beresp.http.Cache-Control ~ "(?i)immutable") {
        set beresp.stale_if_error = 31536000s;
      }
    VCL
  }

  # Origin unreachable (refused, timed out) or sick: the stale copy if there is one.
  snippet {
    name     = "oberon_error_stale"
    type     = "error"
    priority = 10
    content  = <<-VCL
      if (obj.status >= 500 && obj.status < 600 && stale.exists) {
        return(deliver_stale);
      }
    VCL
  }

  # The targeted and surrogate fields are for the CDN: strip them when answering the
  # client, but keep them between shield and edge, which needs them to cache and purge.
  snippet {
    name     = "oberon_deliver_strip_cdn_headers"
    type     = "deliver"
    priority = 10
    content  = <<-VCL
      if (fastly.ff.visits_this_service == 0) {
        unset resp.http.CDN-Cache-Control;
        unset resp.http.Surrogate-Control;
        unset resp.http.Surrogate-Key;
        unset resp.http.Cache-Tag;
      }
    VCL
  }

  force_destroy = false
}
