# frozen_string_literal: true

require "logger"

module Secinfra
  # An {Identity::Source} that enrols, then keeps the identity and trust
  # bundle current in a background thread (spec 8.7, 9, 10): renewal with a
  # new key each time, backoff on failures, expiry events, re-enrolment with
  # a JWT provider, bundle refresh at the hint, each when its
  # {Runtime::RotationPolicy} says. A new certificate is installed only after
  # the checks of 8.7.4 (an X509-SVID for the new key that chains to the
  # bundle, after one bundle refresh) and, for a renewal, 9.3.3 (the same
  # SPIFFE ID); a refused renewal is a failed one. Call {#start} once,
  # {#close} at the end.
  class RotatingIdentity
    include Identity::Source

    # The rotation thread never sleeps longer than this at once (seconds).
    MAX_SLEEP = 60.0
    # The rotation thread never wakes sooner than this after a step (seconds).
    MIN_SLEEP = 0.05
    # How the client's own bundle fetches are made: they always reach the
    # server (spec 7.12.2), conditional on the last bundle's ETag when the
    # cache holds it (10.2.2), and a failure is never answered from the cache.
    BUNDLE_FETCH = CallOptions.new(revalidate: true)

    attr_reader :server_id
    # @return [Runtime::RotationPolicy]
    attr_reader :rotation

    # @param bundle [TrustBundle] the initial trust bundle
    # @param join_token [String, nil] single use
    # @param jwt [String, #call, nil] a JWT, or a provider returning a fresh one (reusable)
    # @param rotation [Runtime::RotationPolicy] when to renew, retry and refresh
    def initialize(bundle, join_token: nil, jwt: nil, server_id: nil, clock: Runtime::SystemClock.new,
                   random: Random.new, logger: Logger.new($stderr, level: Logger::WARN),
                   rotation: Runtime::RotationPolicy.new)
      raise ArgumentError, "secinfra: identity: give exactly one of join_token or jwt" if join_token.nil? == jwt.nil?

      @join_token = join_token
      @jwt = jwt.is_a?(String) ? -> { jwt } : jwt
      @bundle = bundle
      @server_id = server_id || Identity.server_id_for(bundle)
      @clock = clock
      @random = random
      @logger = logger
      @rotation = rotation
      @lock = Mutex.new
      @enrol_lock = Mutex.new
      @reenrolment = nil # the re-enrolment in flight, or the last one (spec 9.7.2)
      @wake = ConditionVariable.new
      @identity = nil
      @renew_at = nil
      @failures = 0
      @bundle_due = nil
      @expired_serial = nil
      @reenrol_due = nil
      @stopped = false
      @thread = nil
      @client = nil
      @events = EventDispatcher.new(logger)
    end

    # The IdentityService client (over the transport that uses this source).
    def attach(identity_client)
      @client = identity_client
    end

    # Enrols now (raising on failure), fetches the bundle, then rotates in the background.
    def start
      enrol
      begin
        fetch_bundle
      rescue Secinfra::Error => e
        @logger.warn("secinfra: identity: first bundle fetch failed: #{e.message}")
        @lock.synchronize { @bundle_due = @clock.now + @rotation.bundle_retry_interval(@bundle.refresh_hint) }
      end
      @thread = Thread.new { run }
      @thread.name = "secinfra-rotation"
      self
    end

    # Stops rotating (and delivering events).
    def close
      @lock.synchronize do
        @stopped = true
        @wake.broadcast
      end
      @thread&.join(5)
      @events.close
    end

    # @return [X509Identity, nil]
    def identity = @lock.synchronize { @identity }

    # @return [TrustBundle]
    def bundle = @lock.synchronize { @bundle }

    def subscribe(callable) = @events.subscribe(callable)

    # The identity for an mTLS call. After expiry, with a JWT provider, it
    # starts a re-enrolment or joins the one in flight (one at a time, in a
    # thread of its own: spec 9.7.2) and waits for it until +deadline_at+
    # (monotonic seconds; nil: as long as it takes).
    #
    # @raise [DeadlineExceeded] when +deadline_at+ passes first: the
    #   re-enrolment goes on, and a later call may find it done (spec 5.4.1)
    # @raise [IdentityExpired] when there is no reusable attestation or the
    #   re-enrolment failed (spec 9.7.3)
    def ensure_identity(deadline_at = nil)
      current = identity
      return current if current && @clock.now < current.not_after

      if @jwt.nil?
        raise IdentityExpired,
              "secinfra: identity: the certificate expired and could not be renewed; a join token cannot " \
              "re-enrol (configure a JWT attestation, or enrol again with a new token)"
      end
      flight = reenrol
      unless flight.wait(@clock, deadline_at)
        raise DeadlineExceeded.new("secinfra: identity: the certificate expired and the re-enrolment is still running",
                                   retryable: true)
      end
      if flight.error
        raise IdentityExpired.new("secinfra: identity: the certificate expired and re-enrolment failed: " \
                                  "#{flight.error.message}"), cause: flight.error
      end
      flight.identity
    end

    # Fetches the bundle once now (after a verification failure, spec 10.3);
    # true when a newer bundle replaced the held one.
    def refresh_bundle
      return false if Thread.current[:secinfra_bundle_refresh]

      Thread.current[:secinfra_bundle_refresh] = true
      before = bundle.sequence
      fetch_bundle
      bundle.sequence > before
    rescue Secinfra::Error => e
      @logger.warn("secinfra: identity: bundle refresh failed: #{e.message}")
      false
    ensure
      Thread.current[:secinfra_bundle_refresh] = false
    end

    def inspect = "#<Secinfra::RotatingIdentity #{identity.inspect}>"
    alias to_s inspect

    private

    # The re-enrolment in flight, or a new one in a thread of its own; none
    # when a finished one left a valid certificate.
    def reenrol
      flight = Reenrolment.new
      @lock.synchronize do
        return @reenrolment if @reenrolment && !@reenrolment.done?

        current = @identity
        if current && @clock.now < current.not_after
          flight.finish(identity: current)
          return flight
        end
        @reenrolment = flight
      end
      thread = Thread.new do
        enrol
        flight.finish(identity: identity)
      rescue StandardError => e # handed to every waiter, never lost
        flight.finish(error: e)
      end
      thread.name = "secinfra-reenrol"
      flight
    end

    def client
      raise Secinfra::Error, "secinfra: identity: attach an IdentityClient first" if @client.nil?

      @client
    end

    def enrol
      @enrol_lock.synchronize { enrol_now }
    end

    def enrol_now
      key = Identity.new_private_key
      if @join_token
        token = @join_token
        @join_token = nil # single use (spec 8.7.2)
        answer = client.issue_certificate(csr_pem: Identity.build_csr(key), join_token: token)
      else
        answer = client.issue_certificate(csr_pem: Identity.build_csr(key), jwt: @jwt.call.to_s)
      end
      install(answer.svid, key, :enrolled)
    end

    def renew(current)
      key = Identity.new_private_key
      answer = client.renew_certificate(csr_pem: Identity.build_csr(key))
      install(answer.svid, key, :renewed, expected_spiffe_id: current.spiffe_id)
    end

    # Checks a new certificate and installs it as the current snapshot
    # (spec 8.7.4, 8.7.5, 9.3.3); raises IdentityError, installing nothing,
    # when a check fails.
    #
    # @param expected_spiffe_id [String, nil] for a renewal: the current SPIFFE ID
    def install(svid, key, kind, expected_spiffe_id: nil)
      what = kind == :renewed ? "renewed" : "issued"
      raise Identity::IdentityError, "secinfra: identity: the server's answer holds no certificate" if svid.nil?

      fresh = Identity.parse_identity(svid.cert_chain_pem, key, received_at: @clock.now)
      if expected_spiffe_id && fresh.spiffe_id != expected_spiffe_id
        raise Identity::IdentityError,
              "secinfra: identity: the #{what} certificate is refused: it names SPIFFE ID #{fresh.spiffe_id}, " \
              "not this client's #{expected_spiffe_id} (spec 9.3.3)"
      end
      unless Identity.chains_to?(fresh, @lock.synchronize { @bundle }, @clock.now)
        # Signed by a CA this client has not fetched yet (a CA rotation it
        # slept through): one refresh, then refuse (spec 8.7.4).
        fetch_bundle
        unless Identity.chains_to?(fresh, @lock.synchronize { @bundle }, @clock.now)
          raise Identity::IdentityError,
                "secinfra: identity: the #{what} certificate is refused: it does not chain to the trust bundle, " \
                "even after a bundle refresh (spec 8.7.4)"
        end
      end
      event = nil
      @lock.synchronize do
        @identity = fresh
        @renew_at = @rotation.renewal_time(fresh, @random)
        @failures = 0
        @reenrol_due = nil
        @wake.broadcast
        event = RotationEvent.new(kind: kind, identity: fresh, bundle: @bundle, error: nil)
      end
      @events.emit(event)
      fresh
    end

    def fetch_bundle
      # A 304 answers with the cached bundle: the held one, unless the
      # application fetched a newer one itself, which the sequence check
      # then installs. Either way the fetch succeeded (spec 10.2.2).
      wire = client.get_trust_bundle(call_options: BUNDLE_FETCH)
      fetched = Identity.bundle_from_wire(wire)
      event = nil
      @lock.synchronize do
        @bundle_due = @clock.now + @rotation.bundle_refresh_interval(fetched.refresh_hint)
        if fetched.sequence > @bundle.sequence
          @bundle = fetched
          event = RotationEvent.new(kind: :bundle_updated, identity: @identity, bundle: fetched, error: nil)
        end
      end
      @events.emit(event) if event
    end

    def run
      until @lock.synchronize { @stopped }
        delay = begin
          step
        rescue StandardError => e
          @logger.warn("secinfra: identity: rotation step failed: #{e.class}: #{e.message}")
          @rotation.renewal_retry_base
        end
        @lock.synchronize do
          @wake.wait(@lock, delay.clamp(MIN_SLEEP, MAX_SLEEP)) unless @stopped
        end
      end
    end

    # Does what is due; returns seconds until the next step.
    def step
      now = @clock.now
      current, renew_at, bundle_due = @lock.synchronize { [@identity, @renew_at, @bundle_due] }
      if current && now >= current.not_after
        on_expired(current)
      elsif renew_at && now >= renew_at
        try_renew(current)
      end
      if bundle_due.nil? || @clock.now >= bundle_due
        begin
          fetch_bundle
        rescue Secinfra::Error => e
          @logger.warn("secinfra: identity: bundle refresh failed: #{e.message}")
          @lock.synchronize do
            @bundle_due = @clock.now + @rotation.bundle_retry_interval(@bundle.refresh_hint)
          end
        end
      end
      later = @clock.now
      times = @lock.synchronize { [@renew_at, @bundle_due, @identity&.not_after, @reenrol_due].compact }
      next_at = times.select { |t| t > later }.min
      next_at ? [next_at - @clock.now, MIN_SLEEP].max : MAX_SLEEP
    end

    # Renews; a failure (the call's error, or a refused certificate) keeps
    # the current snapshot and schedules the next try (spec 9.3.3, 9.4).
    def try_renew(current)
      renew(current)
    rescue Secinfra::Error => e
      event = nil
      @lock.synchronize do
        @failures += 1
        @renew_at = @rotation.renewal_retry_time(@failures, now: @clock.now, not_after: current.not_after,
                                                            random: @random)
        event = RotationEvent.new(kind: :renewal_failed, identity: @identity, bundle: @bundle, error: e)
      end
      @logger.warn("secinfra: identity: renewal failed: #{e.message}")
      @events.emit(event)
    end

    def on_expired(current)
      event = nil
      @lock.synchronize do
        if @expired_serial != current.serial
          @expired_serial = current.serial
          @renew_at = nil
          error = IdentityExpired.new("secinfra: identity: the certificate #{current.serial} expired at #{current.not_after.iso8601}")
          event = RotationEvent.new(kind: :expired, identity: @identity, bundle: @bundle, error: error)
        end
      end
      @events.emit(event) if event
      return if @jwt.nil?

      due = @lock.synchronize { @reenrol_due }
      return if due && @clock.now < due

      begin
        ensure_identity(@clock.monotonic + Runtime::RetryPolicy::DEADLINE)
      rescue IdentityExpired, DeadlineExceeded => e
        @logger.warn("secinfra: identity: re-enrolment failed: #{e.message}")
        @lock.synchronize { @reenrol_due = @clock.now + @rotation.reenrol_retry }
      end
    end

    # One re-enrolment (spec 9.7.2): its outcome, for every caller waiting.
    class Reenrolment
      attr_reader :identity, :error

      def initialize
        @lock = Mutex.new
        @finished_cv = ConditionVariable.new
        @finished = false
        @identity = nil
        @error = nil
      end

      def finish(identity: nil, error: nil)
        @lock.synchronize do
          @identity = identity
          @error = error
          @finished = true
          @finished_cv.broadcast
        end
      end

      def done? = @lock.synchronize { @finished }

      # Waits until finished or +deadline_at+ (monotonic, nil: no limit)
      # passes; true when finished.
      def wait(clock, deadline_at)
        @lock.synchronize do
          until @finished
            if deadline_at
              left = deadline_at - clock.monotonic
              return false if left <= 0

              @finished_cv.wait(@lock, left)
            else
              @finished_cv.wait(@lock)
            end
          end
          true
        end
      end
    end
  end
end
