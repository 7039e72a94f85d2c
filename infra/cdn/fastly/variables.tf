variable "service_name" {
  description = "Name of the Fastly service."
  type        = string
  default     = "oberon"
}

variable "domain" {
  description = "Public host name served through Fastly (CNAME it to Fastly)."
  type        = string
}

variable "origin_address" {
  description = "Host name of the Oberon gateway that Fastly fetches from (reached over TLS)."
  type        = string
}

variable "origin_port" {
  description = "TLS port of the gateway."
  type        = number
  default     = 443
}

variable "origin_host_header" {
  description = "Host header sent to the gateway; null keeps the client's Host."
  type        = string
  default     = null
}

variable "origin_verify_secret" {
  description = "Shared secret sent to the gateway as X-Origin-Verify on every origin request and health check, so the gateway can refuse traffic that went around the CDN."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.origin_verify_secret) >= 32 && can(regex("^[A-Za-z0-9_-]+$", var.origin_verify_secret))
    error_message = "Use at least 32 characters from [A-Za-z0-9_-] (it is embedded in a VCL string)."
  }
}

variable "shield" {
  description = "Fastly POP used as shield in front of the gateway (null: no shielding)."
  type        = string
  default     = null
}

variable "stale_if_error_ttl" {
  description = "Service-wide stale-if-error fallback in seconds, for responses that carry none."
  type        = number
  default     = 300
}
