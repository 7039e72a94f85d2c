terraform {
  required_version = ">= 1.3.0"

  required_providers {
    fastly = {
      source  = "fastly/fastly"
      version = ">= 5.0.0, < 10.0.0"
    }
  }
}

# Credentials come from the environment (FASTLY_API_KEY), never from this code.
provider "fastly" {}
