# frozen_string_literal: true

require_relative "server_helper"
require "tmpdir"

# Runs every ```ruby example of the "Observers and trace context" section of
# docs/sdk/ruby.md, in order and in one binding, against the reference
# server (each enrolment with a fresh join token), then checks what they
# said they would give.
class ObserversDocsTest < Minitest::Test
  GUIDE = File.expand_path("../../../docs/sdk/ruby.md", __dir__)
  SECTION = "## Observers and trace context"

  # [first line number, code] of each ```ruby block of the section.
  def examples
    text = File.read(GUIDE)
    start = text.index("#{SECTION}\n") or flunk "#{GUIDE} has no section #{SECTION.inspect}"
    finish = text.index(/^## /, start + SECTION.size) || text.size
    offset = text[0, start].count("\n")
    text[start...finish].to_enum(:scan, /^```ruby\n(.*?)^```$/m).map do
      [offset + $~.pre_match.count("\n") + 2, $~[1]]
    end
  end

  def test_the_guide_examples_run
    server = SharedServer.get
    scope = binding
    scope.local_variable_set(:url, server.url)
    clients = []
    blocks = examples
    assert_equal 3, blocks.size
    Dir.mktmpdir("secinfra-docs-") do |dir|
      FileUtils.cp(server.bundle_file, File.join(dir, "bundle.pem"))
      Dir.chdir(dir) do
        blocks.each do |line, code|
          scope.local_variable_set(:token, server.join_token("spiffe://secinfra.local/ruby-docs/#{SecureRandom.hex(4)}"))
          eval(code, scope, GUIDE, line) # the guide's own examples, in its binding
          clients << scope.local_variable_get(:client) if scope.local_variable_defined?(:client)
        end
      end
    end

    counters = scope.local_variable_get(:counters)
    assert_equal 1, counters.calls[["secinfra.v1.IdentityService/IssueCertificate", "ok"]]
    assert_equal 1, counters.cache_lookups[["secinfra.v1.IdentityService/GetTrustBundle", :miss]]
    tracer = self.class.const_get(:Traceparents).new("4bf92f3577b34da6a3ce929d0e0e4736")
    returned = tracer.attempt_started(Secinfra::AttemptStarted.new(rpc: "r", attempt: 2, endpoint: server.url,
                                                                   http_method: "GET"))
    assert_equal({ "traceparent" => "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000002-01" },
                 Secinfra::Runtime::Observers.trace_headers(returned))
    slow = self.class.const_get(:SlowCallLog).new
    _, err = capture_io do
      slow.call_finished(Secinfra::CallFinished.new(rpc: "r", ok: false, code: "not_found",
                                                    meta: Secinfra::ResponseMeta.new(attempts: 1)))
    end
    assert_equal "r: not_found after 1 attempts\n", err
  ensure
    clients&.uniq&.each(&:close)
  end
end
