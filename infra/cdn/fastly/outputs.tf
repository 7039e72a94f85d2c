output "service_id" {
  description = "ID of the Fastly service."
  value       = fastly_service_vcl.oberon.id
}

output "active_version" {
  description = "Active version of the Fastly service."
  value       = fastly_service_vcl.oberon.active_version
}

output "purge_endpoint" {
  description = "POST here with a Surrogate-Key request header (space-separated keys, up to 256) and a Fastly-Key API token to purge every object tagged with any of them."
  value       = "https://api.fastly.com/service/${fastly_service_vcl.oberon.id}/purge"
}

output "purge_by_key_example" {
  description = "How to purge by surrogate key with Fastly's native API (soft purge: objects turn stale, so stale-if-error still covers them)."
  value       = <<-EOT
    curl -sS -X POST \
      -H "Fastly-Key: $FASTLY_API_KEY" \
      -H "Fastly-Soft-Purge: 1" \
      -H "Surrogate-Key: route:/events page:home" \
      https://api.fastly.com/service/${fastly_service_vcl.oberon.id}/purge
  EOT
}
