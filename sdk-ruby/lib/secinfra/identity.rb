# frozen_string_literal: true

require "base64"
require "json"
require "logger"
require "openssl"

module Secinfra
  # Workload identity: keys, CSRs, X509-SVID snapshots, trust bundles and the
  # identity sources the transport asks on every new connection (spec 8-10).
  module Identity
    # The path of the server's SPIFFE ID in every trust domain.
    SERVER_ID_PATH = "/secinfra/server"
    # The elliptic curve of generated keys (ECDSA P-256).
    KEY_CURVE = "prime256v1"
    # Bundle refresh without a usable hint, and the clamp of the hint (spec 10.2.1).
    DEFAULT_BUNDLE_REFRESH = 300.0
    MIN_BUNDLE_REFRESH = 1.0
    MAX_BUNDLE_REFRESH = 86_400.0
    # Seconds before trying a failed bundle fetch again (or the refresh, if shorter).
    BUNDLE_RETRY = 30.0
    # NotBefore backdating the server applies (spec 9.1.2).
    NOT_BEFORE_BACKDATING = 60.0
    # Renewal timing defaults (spec 9.2, 9.4, 9.7).
    RENEWAL_FRACTION = 0.5
    RENEWAL_JITTER = 0.1
    RENEWAL_RETRY_BASE = 1.0
    RENEWAL_RETRY_MAX = 60.0
    RENEWAL_EXPIRY_MARGIN = 1.0
    REENROL_RETRY = 30.0
    # The rotation thread never sleeps longer than this at once.
    MAX_SLEEP = 60.0

    PEM_CERT = /-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----/m

    # Identity problems that are not call errors (a bad certificate, a bundle that does not parse).
    class IdentityError < Secinfra::Error
      DEFAULT_CODE = "invalid_argument"
    end

    module_function

    # A new ECDSA P-256 key, generated here and kept in memory.
    #
    # @return [OpenSSL::PKey::EC]
    def new_private_key
      OpenSSL::PKey::EC.generate(KEY_CURVE)
    end

    # A PEM CSR signed by +key+, with an empty subject and no extensions.
    #
    # @param key [OpenSSL::PKey::EC]
    # @return [String]
    def build_csr(key)
      csr = OpenSSL::X509::Request.new
      csr.version = 0
      csr.subject = OpenSSL::X509::Name.new
      csr.public_key = key
      csr.sign(key, OpenSSL::Digest.new("SHA256"))
      csr.to_pem
    end

    # The certificates of a PEM text.
    #
    # @return [Array<OpenSSL::X509::Certificate>]
    def parse_pem_certificates(text)
      text.to_s.scan(PEM_CERT).map { |pem| OpenSSL::X509::Certificate.new(pem) }
    end

    # The URI SANs of a certificate, exactly as encoded.
    #
    # @return [Array<String>]
    def uri_sans(cert)
      ext = cert.extensions.find { |e| e.oid == "subjectAltName" }
      return [] if ext.nil?

      OpenSSL::ASN1.decode(ext.value_der).value.filter_map do |name|
        name.value if name.tag_class == :CONTEXT_SPECIFIC && name.tag == 6
      end.map do |v|
        v.is_a?(Array) ? v.map(&:value).join : v.to_s
      end
    end

    # The one SPIFFE ID of an X509-SVID leaf, or nil when it is not one.
    def spiffe_id_of(cert)
      uris = uri_sans(cert)
      uris.size == 1 && uris.first.start_with?("spiffe://") ? uris.first : nil
    end

    # A trust bundle from PEM CA certificates or a SPIFFE bundle (JWK Set JSON).
    #
    # @param data [String]
    # @return [TrustBundle]
    # @raise [IdentityError] when it does not parse or holds no X.509 authority
    def load_bundle(data)
      text = data.to_s
      return bundle_from_document(JSON.parse(text)) if text.lstrip.start_with?("{")

      certs = parse_pem_certificates(text)
      raise IdentityError, "secinfra: identity: the trust bundle holds no PEM certificate" if certs.empty?

      TrustBundle.new(certs, sequence: 0, refresh_hint: nil)
    rescue JSON::ParserError, OpenSSL::X509::CertificateError => e
      raise IdentityError, "secinfra: identity: the trust bundle does not parse: #{e.message}"
    end

    # A trust bundle from a SPIFFE bundle document (spec 10.1).
    def bundle_from_document(doc)
      raise IdentityError, "secinfra: identity: the trust bundle is not a JSON object" unless doc.is_a?(Hash)

      entries = (doc["keys"] || []).map { |k| [k["use"], k["x5c"]] }
      bundle_from_entries(entries, doc["spiffe_sequence"], doc["spiffe_refresh_hint"])
    end

    # A trust bundle from the GetTrustBundle answer.
    #
    # @param wire [Secinfra::V1::TrustBundle]
    def bundle_from_wire(wire)
      bundle_from_entries(wire.keys.map { |k| [k.use, k.x5c] }, wire.spiffe_sequence, wire.spiffe_refresh_hint)
    end

    def bundle_from_entries(entries, sequence, hint)
      certs = entries.filter_map do |use, x5c|
        next nil unless use == "x509-svid" && x5c.is_a?(Array) && !x5c.empty?

        OpenSSL::X509::Certificate.new(Base64.strict_decode64(x5c.first.to_s))
      end
      raise IdentityError, "secinfra: identity: the trust bundle holds no X.509 authority" if certs.empty?

      TrustBundle.new(certs, sequence: sequence.to_i, refresh_hint: hint.is_a?(Numeric) ? hint.to_f : nil)
    rescue ArgumentError, OpenSSL::X509::CertificateError => e
      raise IdentityError, "secinfra: identity: the trust bundle holds a bad certificate: #{e.message}"
    end

    # +spiffe://<trust domain>/secinfra/server+, from a CA's URI SAN.
    #
    # @raise [IdentityError] when no CA names a trust domain
    def server_id_for(bundle)
      bundle.certificates.each do |cert|
        uri = uri_sans(cert).find { |u| u.start_with?("spiffe://") }
        return uri.chomp("/") + SERVER_ID_PATH if uri
      end
      raise IdentityError, "secinfra: identity: the trust bundle names no SPIFFE trust domain; give server_id"
    end

    # Parses a chain (leaf first) and checks it is an X509-SVID for +key+ (spec 8.7.4, 8.8.3).
    #
    # @return [X509Identity]
    def parse_identity(chain_pem, key, received_at:)
      chain = parse_pem_certificates(chain_pem)
      raise IdentityError, "secinfra: identity: the certificate chain holds no certificate" if chain.empty?

      leaf = chain.first
      spiffe_id = spiffe_id_of(leaf)
      raise IdentityError, "secinfra: identity: the certificate is not an X509-SVID (one spiffe:// URI SAN)" unless spiffe_id
      unless leaf.public_key.public_to_der == key.public_to_der
        raise IdentityError, "secinfra: identity: the certificate's public key is not the client's key"
      end

      X509Identity.new(spiffe_id: spiffe_id, chain: chain.freeze, key: key,
                       serial: leaf.serial.to_i.to_s(16), not_before: leaf.not_before.utc,
                       not_after: leaf.not_after.utc, issued_at: issued_at(leaf.not_before.utc, received_at))
    end

    # Whether the identity's leaf verifies, through the chain's own
    # intermediates, to a CA of +bundle+ at time +at+ (spec 8.7.4).
    #
    # @param identity [X509Identity]
    # @param bundle [TrustBundle]
    # @param at [Time]
    # @return [Boolean]
    def chains_to?(identity, bundle, at)
      store = bundle.store
      store.time = at
      store.verify(identity.chain.first, identity.chain.drop(1))
    end

    # min(received, NotBefore + backdating) (spec 9.1.2).
    def issued_at(not_before, received)
      [received, not_before + NOT_BEFORE_BACKDATING].min
    end

    # When renewal starts (spec 9.2.1).
    def renewal_time(identity, random, fraction: RENEWAL_FRACTION, jitter: RENEWAL_JITTER)
      lifetime = identity.not_after - identity.issued_at
      identity.issued_at + (fraction * lifetime) - (random.rand * jitter * lifetime)
    end

    # The refresh interval of a bundle's hint (spec 10.2.1).
    def bundle_refresh_interval(hint)
      return DEFAULT_BUNDLE_REFRESH unless hint.is_a?(Numeric) && hint.positive? && hint.finite?

      hint.clamp(MIN_BUNDLE_REFRESH, MAX_BUNDLE_REFRESH)
    end
  end

  # One X509-SVID chain together with its private key (spec 1.3): chain and
  # key are only ever read and replaced together. +inspect+ never shows the key.
  class X509Identity
    # @return [String] the SPIFFE ID
    attr_reader :spiffe_id
    # @return [Array<OpenSSL::X509::Certificate>] leaf first
    attr_reader :chain
    # @return [OpenSSL::PKey::EC] the private key (stays in this process)
    attr_reader :key
    # @return [String] the leaf's serial, lower-case hex without leading zeros
    attr_reader :serial
    # @return [Time]
    attr_reader :not_before, :not_after, :issued_at

    def initialize(spiffe_id:, chain:, key:, serial:, not_before:, not_after:, issued_at:)
      @spiffe_id = spiffe_id
      @chain = chain
      @key = key
      @serial = serial
      @not_before = not_before
      @not_after = not_after
      @issued_at = issued_at
      freeze
    end

    # @return [OpenSSL::X509::Certificate]
    def leaf = @chain.first

    # The chain as PEM (leaf first).
    def chain_pem = @chain.map(&:to_pem).join

    # The key as unencrypted PKCS #8 PEM (for a file sink the application asked for).
    def key_pem = @key.private_to_pem

    def inspect
      "#<Secinfra::X509Identity #{@spiffe_id} serial=#{@serial} not_after=#{@not_after.iso8601} key=[REDACTED]>"
    end
    alias to_s inspect
  end

  # The CA certificates the client trusts, with the bundle's sequence and refresh hint.
  class TrustBundle
    # @return [Array<OpenSSL::X509::Certificate>]
    attr_reader :certificates
    # @return [Integer] 0 for a PEM bundle
    attr_reader :sequence
    # @return [Float, nil] seconds
    attr_reader :refresh_hint

    def initialize(certificates, sequence:, refresh_hint:)
      @certificates = certificates.freeze
      @sequence = sequence
      @refresh_hint = refresh_hint
      @fingerprint = OpenSSL::Digest::SHA256.hexdigest(certificates.map(&:to_der).sort.join)
      freeze
    end

    # @return [String] a digest of the CA set
    attr_reader :fingerprint

    # The CAs as PEM.
    def pem = @certificates.map(&:to_pem).join

    # A new X509 store trusting exactly these CAs (no system roots).
    #
    # @return [OpenSSL::X509::Store]
    def store
      store = OpenSSL::X509::Store.new
      @certificates.each { |c| store.add_cert(c) }
      store
    end

    def inspect = "#<Secinfra::TrustBundle sequence=#{@sequence} cas=#{@certificates.size}>"
  end

  # A rotation event (spec 9.8).
  #
  # @!attribute [r] kind
  #   @return [Symbol] :enrolled, :renewed, :renewal_failed, :expired or :bundle_updated
  # @!attribute [r] identity
  #   @return [X509Identity, nil] the snapshot current after the change
  # @!attribute [r] bundle
  #   @return [TrustBundle] the bundle current after the change
  # @!attribute [r] error
  #   @return [Exception, nil] for :renewal_failed and :expired
  RotationEvent = Struct.new(:kind, :identity, :bundle, :error, keyword_init: true)

  # Delivers rotation events to subscribers in order, from one thread that
  # holds no lock a call needs (spec 9.8.4, 9.8.5).
  class EventDispatcher
    def initialize(logger)
      @logger = logger
      @subscribers = []
      @lock = Mutex.new
      @queue = Queue.new
      @thread = nil
    end

    # @param callable [#call]
    def subscribe(callable)
      @lock.synchronize { @subscribers << callable }
    end

    # Queues +event+ for delivery to every subscriber.
    def emit(event)
      @lock.synchronize do
        @thread ||= Thread.new { run }.tap { |t| t.name = "secinfra-events" }
      end
      @queue << event
    end

    # Stops the delivery thread after the queued events.
    def close
      thread = @lock.synchronize { @thread }
      return if thread.nil?

      @queue << :stop
      thread.join(5)
    end

    private

    def run
      loop do
        event = @queue.pop
        break if event == :stop

        subscribers = @lock.synchronize { @subscribers.dup }
        subscribers.each do |s|
          s.call(event)
        rescue StandardError => e
          @logger.warn("secinfra: identity: a rotation subscriber failed: #{e.class}: #{e.message}")
        end
      end
    end
  end

  # The interface the transport uses (spec 8.1): +server_id+, +identity+,
  # +bundle+, +ensure_identity(deadline_at)+, +refresh_bundle+, +subscribe+.
  # A fixed identity and bundle (files of another process, the admin
  # identity, tests): never renewed; once expired, mTLS calls fail with
  # {IdentityExpired}.
  class StaticIdentity
    attr_reader :server_id

    # @param bundle [TrustBundle]
    # @param identity [X509Identity, nil] nil: only auth-NONE calls work
    # @param server_id [String, nil] default: from the bundle's trust domain
    def initialize(bundle, identity = nil, server_id: nil, clock: Runtime::SystemClock.new,
                   logger: Logger.new($stderr, level: Logger::WARN))
      @bundle = bundle
      @identity = identity
      @server_id = server_id || Identity.server_id_for(bundle)
      @clock = clock
      @events = EventDispatcher.new(logger)
    end

    # Loads PEM files; the key stays in memory once read.
    #
    # @return [StaticIdentity]
    def self.from_files(bundle_file:, cert_file: nil, key_file: nil, server_id: nil)
      bundle = Identity.load_bundle(File.read(bundle_file))
      identity = nil
      if cert_file && key_file
        key = OpenSSL::PKey.read(File.read(key_file))
        identity = Identity.parse_identity(File.read(cert_file), key, received_at: Time.now.utc)
      end
      new(bundle, identity, server_id: server_id)
    end

    # @return [X509Identity, nil]
    def identity = @identity

    # @return [TrustBundle]
    def bundle = @bundle

    # The identity for an mTLS call.
    #
    # @raise [IdentityExpired]
    def ensure_identity(_deadline_at = nil)
      raise IdentityExpired, "secinfra: identity: this client has no identity; enrol first" if @identity.nil?
      if @clock.now >= @identity.not_after
        raise IdentityExpired,
              "secinfra: identity: the certificate for #{@identity.spiffe_id} expired at " \
              "#{@identity.not_after.iso8601} and a static identity cannot renew; load a current one"
      end

      @identity
    end

    # A static bundle never changes.
    def refresh_bundle = false

    def subscribe(callable) = @events.subscribe(callable)

    def close = @events.close
  end

  # Enrols, then keeps the identity and trust bundle current in a background
  # thread (spec 8.7, 9, 10): renewal at half-life minus jitter with a new key
  # each time, backoff on failures, expiry events, re-enrolment with a JWT
  # provider, bundle refresh at the hint. Call {#start} once, {#close} at the end.
  class RotatingIdentity
    attr_reader :server_id

    # @param bundle [TrustBundle] the initial trust bundle
    # @param join_token [String, nil] single use
    # @param jwt [String, #call, nil] a JWT, or a provider returning a fresh one (reusable)
    def initialize(bundle, join_token: nil, jwt: nil, server_id: nil, clock: Runtime::SystemClock.new,
                   random: Random.new, logger: Logger.new($stderr, level: Logger::WARN),
                   renewal_fraction: Identity::RENEWAL_FRACTION, renewal_jitter: Identity::RENEWAL_JITTER,
                   renewal_retry_base: Identity::RENEWAL_RETRY_BASE, renewal_retry_max: Identity::RENEWAL_RETRY_MAX,
                   renewal_expiry_margin: Identity::RENEWAL_EXPIRY_MARGIN, reenrol_retry: Identity::REENROL_RETRY,
                   bundle_retry: Identity::BUNDLE_RETRY)
      raise ArgumentError, "secinfra: identity: give exactly one of join_token or jwt" if join_token.nil? == jwt.nil?

      { renewal_fraction: renewal_fraction, renewal_jitter: renewal_jitter }.each do |n, v|
        raise ArgumentError, "secinfra: identity: #{n} must be in [0, 1]" unless v.is_a?(Numeric) && v.between?(0, 1)
      end
      { renewal_retry_base: renewal_retry_base, renewal_retry_max: renewal_retry_max,
        renewal_expiry_margin: renewal_expiry_margin, reenrol_retry: reenrol_retry, bundle_retry: bundle_retry }.each do |n, v|
        raise ArgumentError, "secinfra: identity: #{n} must be a finite number >= 0" unless v.is_a?(Numeric) && v >= 0 && v.to_f.finite?
      end
      @join_token = join_token
      @jwt = jwt.is_a?(String) ? -> { jwt } : jwt
      @bundle = bundle
      @server_id = server_id || Identity.server_id_for(bundle)
      @clock = clock
      @random = random
      @logger = logger
      @settings = { fraction: renewal_fraction, jitter: renewal_jitter, retry_base: renewal_retry_base,
                    retry_max: renewal_retry_max, margin: renewal_expiry_margin, reenrol: reenrol_retry,
                    bundle_retry: bundle_retry }
      @lock = Mutex.new
      @enrol_lock = Mutex.new
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
        @lock.synchronize { @bundle_due = @clock.now + [@settings[:bundle_retry], Identity.bundle_refresh_interval(@bundle.refresh_hint)].min }
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

    # The identity for an mTLS call; re-enrols (one at a time) when expired and a
    # JWT provider is configured (spec 9.7).
    #
    # @raise [IdentityExpired]
    def ensure_identity(deadline_at = nil)
      current = identity
      return current if current && @clock.now < current.not_after

      if @jwt.nil?
        raise IdentityExpired,
              "secinfra: identity: the certificate expired and could not be renewed; a join token cannot " \
              "re-enrol (configure a JWT attestation, or enrol again with a new token)"
      end
      acquired = lock_within(@enrol_lock, deadline_at)
      raise IdentityExpired, "secinfra: identity: the certificate expired and re-enrolment is still running" unless acquired

      begin
        current = identity
        return current if current && @clock.now < current.not_after

        begin
          enrol_now
        rescue Secinfra::Error => e
          raise IdentityExpired, "secinfra: identity: the certificate expired and re-enrolment failed: #{e.message}"
        end
        identity
      ensure
        @enrol_lock.unlock
      end
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

    def lock_within(mutex, deadline_at)
      loop do
        return true if mutex.try_lock
        return false if deadline_at && @clock.monotonic >= deadline_at

        Kernel.sleep(0.01)
      end
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

    def renew
      key = Identity.new_private_key
      answer = client.renew_certificate(csr_pem: Identity.build_csr(key))
      install(answer.svid, key, :renewed)
    end

    def install(svid, key, kind)
      raise Identity::IdentityError, "secinfra: identity: the server's answer holds no certificate" if svid.nil?

      fresh = Identity.parse_identity(svid.cert_chain_pem, key, received_at: @clock.now)
      unless Identity.chains_to?(fresh, @lock.synchronize { @bundle }, @clock.now)
        # Signed by a CA this client has not fetched yet (a CA rotation it
        # slept through): one refresh, then refuse (spec 8.7.4).
        fetch_bundle
        unless Identity.chains_to?(fresh, @lock.synchronize { @bundle }, @clock.now)
          raise Identity::IdentityError, "secinfra: identity: the new certificate does not chain to the trust bundle"
        end
      end
      event = nil
      @lock.synchronize do
        if kind == :renewed && @identity && @identity.spiffe_id != fresh.spiffe_id
          @logger.warn("secinfra: identity: renewal changed the SPIFFE ID to #{fresh.spiffe_id}")
        end
        @identity = fresh
        @renew_at = Identity.renewal_time(fresh, @random, fraction: @settings[:fraction], jitter: @settings[:jitter])
        @failures = 0
        @reenrol_due = nil
        @wake.broadcast
        event = RotationEvent.new(kind: kind, identity: fresh, bundle: @bundle, error: nil)
      end
      @events.emit(event)
      fresh
    end

    def fetch_bundle
      wire = client.get_trust_bundle(call_options: CallOptions.new(use_cache: false))
      fetched = Identity.bundle_from_wire(wire)
      event = nil
      @lock.synchronize do
        @bundle_due = @clock.now + Identity.bundle_refresh_interval(fetched.refresh_hint)
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
          @settings[:retry_base]
        end
        @lock.synchronize do
          @wake.wait(@lock, delay.clamp(0.05, Identity::MAX_SLEEP)) unless @stopped
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
            retry_in = [Identity.bundle_refresh_interval(@bundle.refresh_hint), @settings[:bundle_retry]].min
            @bundle_due = @clock.now + retry_in
          end
        end
      end
      later = @clock.now
      times = @lock.synchronize { [@renew_at, @bundle_due, @identity&.not_after, @reenrol_due].compact }
      next_at = times.select { |t| t > later }.min
      next_at ? [next_at - @clock.now, 0.05].max : Identity::MAX_SLEEP
    end

    def try_renew(current)
      renew
    rescue Secinfra::Error => e
      event = nil
      @lock.synchronize do
        @failures += 1
        ceiling = [@settings[:retry_max], @settings[:retry_base] * (2.0**[@failures - 1, 62].min)].min
        wait = @random.rand * ceiling
        latest = current.not_after - @settings[:margin]
        at = @clock.now + wait
        at = [at, latest].min
        at = @clock.now if at < @clock.now
        @renew_at = at
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
      rescue IdentityExpired => e
        @logger.warn("secinfra: identity: re-enrolment failed: #{e.message}")
        @lock.synchronize { @reenrol_due = @clock.now + @settings[:reenrol] }
      end
    end
  end
end
