# frozen_string_literal: true

module Secinfra
  # What the application may learn about one call (spec 7.7).
  #
  # @!attribute [r] rpc
  #   @return [String] +secinfra.v1.SecretsService/GetSecret+
  # @!attribute [r] request_id
  #   @return [String, nil] the Request-Id of the last answered attempt, also when a
  #     later one got no answer (spec 7.7.1)
  # @!attribute [r] attempts
  #   @return [Integer] HTTP attempts (0 for a fresh cache hit)
  # @!attribute [r] from_cache
  #   @return [Boolean] the value came from the cache (fresh, revalidated or stale)
  # @!attribute [r] stale
  #   @return [Boolean] a stale value served because the server failed
  # @!attribute [r] status
  #   @return [Integer, nil] the answering attempt's HTTP status
  # @!attribute [r] endpoint
  #   @return [String, nil] the URL, as configured, of the endpoint the answering
  #     (or last) attempt went to; nil for a cache hit without a request (spec 12.8.1)
  ResponseMeta = Struct.new(:rpc, :request_id, :attempts, :from_cache, :stale, :status, :endpoint,
                            keyword_init: true)

  # The calls made inside one {Secinfra.capture} block on the current thread.
  class Captured
    # @return [Array<ResponseMeta>] every successful call, oldest first
    attr_reader :calls
    # @return [Object] the block's value
    attr_accessor :value

    def initialize
      @calls = []
    end

    # @return [ResponseMeta, nil] the metadata of the last call
    def last = @calls.last
  end

  CAPTURE_KEY = :secinfra_capture_stack
  private_constant :CAPTURE_KEY

  # Records the metadata of the calls the block makes on this thread.
  #
  #   captured = Secinfra.capture { client.secrets.get_secret(name: "app/db") }
  #   captured.value        # => the Secret
  #   captured.last.stale   # => false
  #
  # @yield the calls to observe
  # @return [Captured]
  def self.capture
    captured = Captured.new
    stack = (Thread.current[CAPTURE_KEY] ||= [])
    stack.push(captured)
    begin
      captured.value = yield
    ensure
      stack.pop
    end
    captured
  end

  # Whether a {capture} block is open on this thread.
  #
  # @api private
  def self.capturing?
    stack = Thread.current[CAPTURE_KEY]
    !stack.nil? && !stack.empty?
  end

  # @api private
  def self.report(meta)
    stack = Thread.current[CAPTURE_KEY]
    stack&.each { |c| c.calls << meta }
  end
end
