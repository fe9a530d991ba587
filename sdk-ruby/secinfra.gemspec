# frozen_string_literal: true

require_relative "lib/secinfra/version"

Gem::Specification.new do |spec|
  spec.name = "secinfra"
  spec.version = Secinfra::VERSION
  spec.summary = "secinfra client: mTLS workload identity, secrets and authorization checks"
  spec.description = "The Ruby SDK of secinfra: enrols an in-process key for an X509-SVID, keeps it " \
                     "rotated, reads secrets and checks permissions with retries and caching as the " \
                     "secinfra client specification says. Standard library only."
  spec.authors = ["secinfra maintainers"]
  spec.license = "Apache-2.0"
  spec.homepage = "https://github.com/secinfra/secinfra"
  spec.required_ruby_version = ">= 3.1"
  spec.files = Dir["lib/**/*.rb", "bin/*", "README.md", "LICENSE"]
  spec.bindir = "bin"
  spec.executables = ["secinfra-conformance"]
  spec.require_paths = ["lib"]
  spec.metadata["rubygems_mfa_required"] = "true"
  spec.metadata["source_code_uri"] = "https://github.com/secinfra/secinfra/tree/main/sdk-ruby"
  spec.metadata["documentation_uri"] = "https://github.com/secinfra/secinfra/blob/main/docs/sdk/ruby.md"
  spec.metadata["changelog_uri"] = "https://github.com/secinfra/secinfra/blob/main/CHANGELOG.md"
  spec.metadata["bug_tracker_uri"] = "https://github.com/secinfra/secinfra/issues"
end
