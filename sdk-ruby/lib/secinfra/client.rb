# frozen_string_literal: true

module Secinfra
  # Talks to a secinfra server as one workload identity. Service clients:
  # {#secrets}, {#authz}, {#identity} (one method per RPC). Thread-safe:
  # create one per process and share it.
  #
  #   client = Secinfra::Client.enrol("https://127.0.0.1:8443", join_token: token,
  #                                   bundle_file: "bundle.pem")
  #   secret = client.secrets.get_secret(name: "payments/db/password")
  #
  # Every default is a named constant and can be set here (per client); the
  # per-call ones also through +call_options:+ ({CallOptions}).
  #
  # Observers see every call, cache lookup and attempt, the client's own
  # enrolment, renewal and bundle refresh calls included, and may add W3C
  # trace context to each attempt ({Observer}; spec 14):
  #
  #   counters = Secinfra::Metrics::Counters.new
  #   client = Secinfra::Client.enrol(url, join_token: token, bundle_file: "bundle.pem",
  #                                   observers: [counters])
  #
  # Several replicas of one deployment: give every URL (spec 12). Each
  # attempt goes to the home endpoint (chosen at random, or the first with
  # +endpoint_order: :listed+) unless it is cooling down after a connection
  # failure, timeout, 502, 503 or 504; a move to another endpoint is an
  # ordinary retry, with the same Idempotency-Key, within the retry rules
  # and budget. One URL behaves exactly as a list of that one URL.
  #
  #   client = Secinfra::Client.enrol(["https://10.0.0.1:8443", "https://10.0.0.2:8443"],
  #                                   join_token: token, bundle_file: "bundle.pem")
  class Client
    # @return [Secinfra::V1::SecretsClient]
    attr_reader :secrets
    # @return [Secinfra::V1::AuthzClient]
    attr_reader :authz
    # @return [Secinfra::V1::IdentityClient]
    attr_reader :identity
    # @return [Secinfra::V1::EntriesClient]
    attr_reader :entries
    # @return [StaticIdentity, RotatingIdentity] where the identity and bundle come from
    attr_reader :source

    # Settings every constructor accepts (spec 1.7), with their defaults.
    SETTINGS = {
      max_attempts: Runtime::RetryPolicy::MAX_ATTEMPTS,
      base_backoff: Runtime::RetryPolicy::BASE_BACKOFF,
      max_backoff: Runtime::RetryPolicy::MAX_BACKOFF,
      max_retry_after: Runtime::RetryPolicy::MAX_RETRY_AFTER,
      deadline: Runtime::RetryPolicy::DEADLINE,
      attempt_timeout: Runtime::RetryPolicy::ATTEMPT_TIMEOUT,
      cache_size: Runtime::ResponseCache::MAX_ENTRIES,
      use_cache: true,
      budget_capacity: Runtime::RetryBudget::CAPACITY,
      retry_cost: Runtime::RetryBudget::RETRY_COST,
      timeout_retry_cost: Runtime::RetryBudget::TIMEOUT_RETRY_COST,
      success_refund: Runtime::RetryBudget::SUCCESS_REFUND,
      endpoint_order: :random,
      endpoint_cooldown: Runtime::EndpointSet::COOLDOWN,
      endpoint_cooldown_max: Runtime::EndpointSet::COOLDOWN_MAX
    }.freeze

    # @param url [String, Array<String>] the server, https:// only, or every
    #   replica's URL (a non-empty list, no URL twice)
    # @param source [Identity::Source] a {StaticIdentity}, a {RotatingIdentity} or your own
    # @param clock [Runtime::SystemClock] replaceable for tests
    # @param random [Random] the jitter and home-endpoint source, replaceable for tests
    # @param logger [Logger]
    # @param observers [Array<Observer, Object>] told of every call, cache
    #   lookup and attempt, in this order ({Observer}; spec 14); +enrol+ and
    #   +from_files+ take them too
    # @param settings see {SETTINGS}
    # @raise [ArgumentError] on an invalid setting, naming it
    def initialize(url, source, clock: Runtime::SystemClock.new, random: Random.new,
                   logger: Logger.new($stderr, level: Logger::WARN), observers: [], **settings)
      unknown = settings.keys - SETTINGS.keys
      raise ArgumentError, "secinfra: unknown client settings #{unknown.join(", ")}" unless unknown.empty?

      s = SETTINGS.merge(settings)
      policy = Runtime::RetryPolicy.new(max_attempts: s[:max_attempts], base_backoff: s[:base_backoff],
                                        max_backoff: s[:max_backoff], max_retry_after: s[:max_retry_after],
                                        deadline: s[:deadline], attempt_timeout: s[:attempt_timeout])
      budget = Runtime::RetryBudget.new(capacity: s[:budget_capacity], retry_cost: s[:retry_cost],
                                        timeout_retry_cost: s[:timeout_retry_cost], success_refund: s[:success_refund])
      raise ArgumentError, "secinfra: cache: use_cache must be true or false" unless [true, false].include?(s[:use_cache])

      observed = Runtime::Observers.new(observers, logger: logger)
      cache = Runtime::ResponseCache.new(max_entries: s[:cache_size], clock: clock)
      endpoints = Runtime::EndpointSet.new(url, clock: clock, random: random, order: s[:endpoint_order],
                                                cooldown: s[:endpoint_cooldown],
                                                cooldown_max: s[:endpoint_cooldown_max])
      @source = source
      transport = Runtime::Transport.new(endpoints, source, clock: clock)
      @pipeline = Runtime::CallPipeline.new(transport, source, policy: policy, budget: budget, cache: cache,
                                                               clock: clock, random: random, use_cache: s[:use_cache],
                                                               observers: observed)
      @secrets = V1::SecretsClient.new(@pipeline)
      @authz = V1::AuthzClient.new(@pipeline)
      @identity = V1::IdentityClient.new(@pipeline)
      @entries = V1::EntriesClient.new(@pipeline)
    end

    # Enrols a new in-process key with a join token or a JWT, then keeps it rotated.
    #
    # @param url [String, Array<String>] one URL or every replica's (enrolment,
    #   renewal and bundle fetches use the list as every call does)
    # @param join_token [String, nil] single use
    # @param jwt [String, #call, nil] a JWT or a provider of fresh ones (then the
    #   client re-enrols by itself if its certificate ever expires)
    # @param bundle_file [String, nil] the trust bundle (PEM or SPIFFE JSON) ...
    # @param bundle_pem [String, nil] ... or its text; exactly one of the two
    # @param server_id [String, nil] default: +spiffe://<td>/secinfra/server+ from the bundle
    # @param identity_settings [Hash] the rotation settings ({Runtime::RotationPolicy}):
    #   renewal_fraction, renewal_jitter, renewal_retry_base, renewal_retry_max,
    #   renewal_expiry_margin, reenrol_retry, bundle_retry, bundle_refresh_default,
    #   bundle_refresh_min, bundle_refresh_max
    # @return [Client]
    # @raise [ArgumentError] on an invalid setting, naming it
    # @raise [Secinfra::Error] when enrolment fails (for example Unauthenticated for a spent token)
    def self.enrol(url, join_token: nil, jwt: nil, bundle_file: nil, bundle_pem: nil, server_id: nil,
                   clock: Runtime::SystemClock.new, random: Random.new,
                   logger: Logger.new($stderr, level: Logger::WARN), identity_settings: {}, **settings)
      raise ArgumentError, "secinfra: give exactly one of bundle_file or bundle_pem" if bundle_file.nil? == bundle_pem.nil?

      rotation = Runtime::RotationPolicy.new(**identity_settings)
      bundle = Identity.load_bundle(bundle_file ? File.read(bundle_file) : bundle_pem)
      source = RotatingIdentity.new(bundle, join_token: join_token, jwt: jwt, server_id: server_id, clock: clock,
                                            random: random, logger: logger, rotation: rotation)
      client = new(url, source, clock: clock, random: random, logger: logger, **settings)
      source.attach(client.identity)
      begin
        source.start
      rescue Exception # rubocop:disable Lint/RescueException -- close, then re-raise anything
        client.close
        raise
      end
      client
    end

    # Uses an identity kept in files by someone else (the admin identity, an
    # agent). It is not renewed by this client.
    #
    # @return [Client]
    def self.from_files(url, cert_file:, key_file:, bundle_file:, server_id: nil, **settings)
      source = StaticIdentity.from_files(bundle_file: bundle_file, cert_file: cert_file, key_file: key_file,
                                         server_id: server_id)
      new(url, source, **settings)
    end

    # Every endpoint's state, home endpoint first (spec 12.8.4): for metrics and tests.
    #
    # @return [Array<Runtime::EndpointState>]
    def endpoints = @pipeline.endpoints.states

    # This client's retry budget (its own).
    #
    # @return [Runtime::RetryBudget]
    def budget = @pipeline.budget

    # This client's response cache (its own).
    #
    # @return [Runtime::ResponseCache]
    def cache = @pipeline.cache

    # Calls the block with a {RotationEvent} after every enrolment, renewal,
    # failed renewal, expiry and trust-bundle change, in order, from a
    # background thread. A block that raises is logged and skipped.
    #
    # @yieldparam event [RotationEvent]
    def on_rotation(&block)
      raise ArgumentError, "secinfra: on_rotation needs a block" unless block

      @source.subscribe(block)
    end

    # Stops rotating, closes connections and drops every cached response.
    def close
      @source.close if @source.respond_to?(:close)
      @pipeline.close
    end

    def inspect = "#<Secinfra::Client #{@source.inspect}>"
    alias to_s inspect
  end
end
