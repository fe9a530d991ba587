# frozen_string_literal: true

require "uri"

module Secinfra
  module Runtime
    # One endpoint of a client (spec 12.1): its URL as configured (a
    # trailing +/+ removed), and the host, port and path prefix the
    # transport connects to and puts before every RPC path.
    Endpoint = Struct.new(:url, :host, :port, :base_path) do
      def inspect = "#<Secinfra::Runtime::Endpoint #{url}>"
      alias_method :to_s, :url
    end

    # One endpoint as the client sees it now (spec 12.8.4).
    #
    # @!attribute [r] url
    #   @return [String] the URL as configured (a trailing +/+ removed)
    # @!attribute [r] failures
    #   @return [Integer] endpoint failures in a row (0 after any other outcome)
    # @!attribute [r] cooling_until
    #   @return [Float, nil] the monotonic time its cooldown ends; nil when it is not cooling down
    EndpointState = Struct.new(:url, :failures, :cooling_until, keyword_init: true)

    # The endpoints of one client and their cooldowns (spec 12): the
    # endpoint order (the list rotated so that its home endpoint, chosen at
    # random unless +order: :listed+, comes first), and per endpoint its
    # endpoint failures in a row and when its cooldown ends. An attempt goes
    # to the first endpoint of the order that is not cooling down or, when
    # all are, to the one whose last failure is the oldest ({#choose}).
    # Which outcomes are endpoint failures is {.endpoint_failure?}.
    #
    # Whether a call makes another attempt stays the retry rules' decision
    # ({Retry.decide}): a move to another endpoint is an ordinary retry.
    # Thread-safe: every call, thread and the rotation thread share it.
    class EndpointSet
      # Cooldown after an endpoint's first endpoint failure in a row, seconds (12.4.2).
      COOLDOWN = 1.0
      # The longest cooldown, seconds (12.4.2).
      COOLDOWN_MAX = 30.0
      # The home endpoint is chosen at random (default) or is the first URL (12.2.2).
      ORDERS = %i[random listed].freeze
      # Statuses that are endpoint failures (12.4.1); an attempt without an answer is one too.
      FAILURE_STATUSES = [502, 503, 504].freeze
      # Doublings counted at most (the cooldown reaches its maximum long before).
      MAX_DOUBLINGS = 32

      # Whether an attempt that got +status+ (nil: no answer at all) is an
      # endpoint failure. A verification failure is never one (12.6.1): the
      # pipeline records nothing for it.
      #
      # @param status [Integer, nil]
      def self.endpoint_failure?(status) = status.nil? || FAILURE_STATUSES.include?(status)

      # Per endpoint: failures in a row, cooldown end, last failure (monotonic).
      Slot = Struct.new(:endpoint, :failures, :until, :failed_at)
      private_constant :Slot

      # @param urls [String, Array<String>] one URL or a non-empty list (12.1.1)
      # @param order [Symbol, String] +:random+ or +:listed+
      # @param cooldown [Numeric] seconds
      # @param cooldown_max [Numeric] seconds
      # @param clock [SystemClock] its monotonic time measures cooldowns
      # @param random [Random] picks the home endpoint (12.2.2)
      # @raise [ArgumentError] on an invalid setting, naming it (12.1.2, 12.4.6)
      def initialize(urls, clock:, random:, order: :random, cooldown: COOLDOWN, cooldown_max: COOLDOWN_MAX)
        given = urls.is_a?(Array) ? urls : [urls]
        raise ArgumentError, "secinfra: client: endpoints: give at least one URL" if given.empty?

        endpoints = given.map { |url| self.class.parse(url) }
        repeated = endpoints.map(&:url).tally.select { |_, n| n > 1 }.keys
        raise ArgumentError, "secinfra: client: endpoints: listed twice: #{repeated.join(", ")}" unless repeated.empty?

        order = order.to_s.to_sym
        unless ORDERS.include?(order)
          raise ArgumentError, "secinfra: client: endpoint_order must be :random or :listed, got #{order.inspect}"
        end

        { endpoint_cooldown: cooldown, endpoint_cooldown_max: cooldown_max }.each do |name, value|
          next if value.is_a?(Numeric) && value.to_f.finite? && value.positive?

          raise ArgumentError, "secinfra: client: #{name} must be a finite number of seconds above 0, got #{value.inspect}"
        end
        if cooldown_max < cooldown
          raise ArgumentError, "secinfra: client: endpoint_cooldown_max must be at least endpoint_cooldown " \
                               "(#{cooldown_max} < #{cooldown})"
        end

        home = order == :random && endpoints.size > 1 ? random.rand(endpoints.size) : 0
        @slots = endpoints.rotate(home).map { |e| Slot.new(e, 0, -Float::INFINITY, -Float::INFINITY) }.freeze
        @cooldown = cooldown.to_f
        @cooldown_max = cooldown_max.to_f
        @clock = clock
        @lock = Mutex.new
      end

      # One endpoint URL, checked (https only, a host, no user-info: 12.1.2, 12.8.3).
      #
      # @return [Endpoint]
      # @raise [ArgumentError] naming what to fix (never echoing user-info)
      def self.parse(url)
        uri = begin
          URI.parse(url.to_s)
        rescue URI::InvalidURIError
          nil
        end
        if uri.is_a?(URI::Generic) && uri.userinfo
          # Never echo it: the user-info may hold a password.
          raise ArgumentError, "secinfra: client: endpoints: a URL must not carry user-info (user:password@); " \
                               "the client authenticates by its certificate"
        end
        unless uri.is_a?(URI::HTTPS) && uri.host && !uri.host.empty?
          raise ArgumentError, "secinfra: transport: the server URL must be https:// (mTLS), got #{url.inspect}"
        end

        clean = url.to_s.chomp("/")
        Endpoint.new(clean, uri.host.delete_prefix("[").delete_suffix("]"), uri.port, uri.path.to_s.chomp("/")).freeze
      end

      # @return [Array<Endpoint>] the endpoint order, the home endpoint first (12.2.1)
      def endpoints = @slots.map(&:endpoint)

      # @return [Endpoint] the home endpoint
      def home = @slots.first.endpoint

      # @return [Integer]
      def size = @slots.size

      # The endpoint of the next attempt (12.3.1, 12.3.2).
      #
      # @return [Endpoint]
      def choose
        return @slots.first.endpoint if @slots.size == 1

        now = @clock.monotonic
        @lock.synchronize do
          ready = @slots.find { |s| s.until <= now }
          # All cooling down: the oldest last failure; min_by keeps the earlier on a tie.
          (ready || @slots.min_by(&:failed_at)).endpoint
        end
      end

      # Records an attempt's outcome at +endpoint+: an endpoint failure
      # starts or lengthens its cooldown (12.4.2), anything else ends it
      # (12.4.3). Not called for a verification failure (12.6.1).
      #
      # @param endpoint [Endpoint]
      # @param failure [Boolean] whether the outcome is an endpoint failure
      def record(endpoint, failure:)
        now = @clock.monotonic
        @lock.synchronize do
          slot = @slots.find { |s| s.endpoint.equal?(endpoint) }
          return if slot.nil?

          if failure
            slot.failures += 1
            slot.failed_at = now
            slot.until = now + [@cooldown_max, @cooldown * (2**[slot.failures - 1, MAX_DOUBLINGS].min)].min
          else
            slot.failures = 0
            slot.until = -Float::INFINITY
          end
        end
      end

      # Every endpoint's state, in endpoint order (12.8.4).
      #
      # @return [Array<EndpointState>]
      def states
        now = @clock.monotonic
        @lock.synchronize do
          @slots.map do |s|
            EndpointState.new(url: s.endpoint.url, failures: s.failures, cooling_until: s.until > now ? s.until : nil)
          end
        end
      end

      def inspect = "#<Secinfra::Runtime::EndpointSet #{@slots.map { |s| s.endpoint.url }.join(", ")}>"
      alias to_s inspect
    end
  end
end
