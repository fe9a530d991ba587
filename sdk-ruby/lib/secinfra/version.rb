# frozen_string_literal: true

module Secinfra
  # The SDK's release version (sent in User-Agent).
  VERSION = "0.1.0"
end
