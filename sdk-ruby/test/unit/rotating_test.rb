# frozen_string_literal: true

require "test_helper"

# The rotating source (identity/rotating.rb) against a CA played by a fake
# invoker behind the generated IdentityClient: what it installs, what it
# refuses (spec 8.7.4, 9.3.3), and that a refused renewal is retried.
class RotatingTest < Minitest::Test
  include TestCerts
  V1 = Secinfra::V1
  WORKLOAD = "spiffe://secinfra.local/app"
  # Seconds a test waits at most for the rotation thread.
  WAIT = 5

  # Plays the server's IdentityService: signs every CSR for WORKLOAD with
  # the trusted CA, unless the next renewal is scripted to carry another
  # SPIFFE ID or to be signed by a CA in no bundle.
  class FakeCA
    include Secinfra::RPC::Invoker

    attr_reader :bundle_fetches, :renewals, :issues
    # Seconds each certificate lives.
    attr_accessor :lifetime

    def initialize(test, trusted, untrusted)
      @test = test
      @trusted = trusted
      @untrusted = untrusted
      @script = Queue.new
      @bundle_fetches = 0
      @renewals = 0
      @issues = 0
      @serial = 100
      @lifetime = 3600
      @lock = Mutex.new
      @issuance_open = true
      @issuance_cv = ConditionVariable.new
    end

    # Every IssueCertificate waits (at most WAIT s) until #open_issuance (a slow re-enrolment).
    def hold_issuance = @lock.synchronize { @issuance_open = false }

    def open_issuance
      @lock.synchronize do
        @issuance_open = true
        @issuance_cv.broadcast
      end
    end

    # The next renewal answers: :other_id, :untrusted_ca (then good ones).
    def next_renewal(kind) = @script << kind

    def invoke(descriptor, request, response_class, options)
      case descriptor.name
      when "IssueCertificate"
        @lock.synchronize do
          @issues += 1
          @issuance_cv.wait(@lock, WAIT) unless @issuance_open
        end
        response_class.new(svid: svid(request.csr_pem, WORKLOAD, @trusted))
      when "RenewCertificate"
        @lock.synchronize { @renewals += 1 }
        kind = @script.empty? ? :good : @script.pop
        spiffe_id = kind == :other_id ? "spiffe://secinfra.local/someone-else" : WORKLOAD
        response_class.new(svid: svid(request.csr_pem, spiffe_id, kind == :untrusted_ca ? @untrusted : @trusted))
      when "GetTrustBundle"
        @lock.synchronize { @bundle_fetches += 1 }
        raise "bundle fetches must revalidate" unless options&.revalidate

        V1::TrustBundle.new(keys: [V1::Jwk.new(use: "x509-svid", x5c: [Base64.strict_encode64(@trusted[0].to_der)])],
                            spiffe_sequence: 1, spiffe_refresh_hint: 300)
      else raise "unexpected #{descriptor.full_name}"
      end
    end

    private

    def svid(csr_pem, spiffe_id, (ca_cert, ca_key))
      serial = @lock.synchronize { @serial += 1 }
      cert = @test.leaf(ca_cert, ca_key, OpenSSL::X509::Request.new(csr_pem).public_key, [spiffe_id], serial: serial,
                                                                                                  not_after: Time.now + @lifetime)
      V1::X509Svid.new(cert_chain_pem: cert.to_pem)
    end
  end

  def setup
    trusted = ca
    @fake = FakeCA.new(self, trusted, ca(name: "a CA in no bundle"))
    @events = Queue.new
    # Renewal due at once after each install; a failed one retried within 50 ms.
    rotation = Secinfra::Runtime::RotationPolicy.new(renewal_fraction: 0, renewal_jitter: 0, renewal_retry_base: 0.05,
                                                     renewal_retry_max: 0.05)
    @source = Secinfra::RotatingIdentity.new(Secinfra::Identity.load_bundle(trusted[0].to_pem), join_token: "sjt_a.b",
                                             rotation: rotation, logger: Logger.new(File::NULL))
    @source.subscribe(->(e) { @events << e })
    @source.attach(V1::IdentityClient.new(@fake))
  end

  def teardown
    @source.close
  end

  # The events up to and including the first of +kind+.
  def events_until(kind)
    seen = []
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + WAIT
    loop do
      if @events.empty?
        late = Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        flunk "no #{kind} event within #{WAIT} s; saw #{seen.map(&:kind)}" if late
        sleep 0.01
        next
      end
      event = @events.pop
      seen << event
      return seen if event.kind == kind
    end
  end

  def test_a_renewal_with_another_spiffe_id_is_refused_then_retried
    @fake.next_renewal(:other_id)
    @source.start
    enrolled = events_until(:enrolled).last.identity
    failed = events_until(:renewal_failed).last
    assert_kind_of Secinfra::Identity::IdentityError, failed.error
    assert_match(/SPIFFE ID spiffe:\/\/secinfra.local\/someone-else, not this client's #{WORKLOAD}/, failed.error.message)
    assert_equal enrolled, failed.identity, "the current certificate stays"
    renewed = events_until(:renewed).last.identity
    assert_equal WORKLOAD, renewed.spiffe_id, "the next good answer is installed"
    refute_equal enrolled.serial, renewed.serial
    assert_operator @fake.renewals, :>=, 2
  end

  def test_a_renewed_chain_that_does_not_verify_is_refused_after_one_bundle_refresh
    @fake.next_renewal(:untrusted_ca)
    @source.start
    enrolled = events_until(:enrolled).last.identity
    failed = events_until(:renewal_failed).last
    assert_equal 2, @fake.bundle_fetches, "the fetch after enrolment, then one refresh before giving up"
    assert_kind_of Secinfra::Identity::IdentityError, failed.error
    assert_match(/does not chain to the trust bundle, even after a bundle refresh/, failed.error.message)
    assert_equal enrolled, failed.identity, "the current certificate stays"
    assert_equal enrolled, @source.identity, "not installed"
    renewed = events_until(:renewed).last.identity
    assert Secinfra::Identity.chains_to?(renewed, @source.bundle, Time.now)
  end

  # Spec 5.1.2, 5.4.1, 9.7.2: a caller waits for the re-enrolment only until
  # its deadline, and gets DeadlineExceeded, not IdentityExpired; the
  # re-enrolment goes on, and a later caller gets its certificate.
  def test_a_wait_for_a_reenrolment_ends_at_its_deadline_and_the_reenrolment_goes_on
    @fake.lifetime = 2
    1000.times { @fake.next_renewal(:untrusted_ca) } # every renewal refused
    rotation = Secinfra::Runtime::RotationPolicy.new(renewal_fraction: 0, renewal_jitter: 0, renewal_retry_base: 0.1,
                                                     renewal_retry_max: 0.1)
    @source = Secinfra::RotatingIdentity.new(@source.bundle, jwt: "a.reusable.jwt", rotation: rotation,
                                                             logger: Logger.new(File::NULL))
    @source.subscribe(->(e) { @events << e })
    @source.attach(V1::IdentityClient.new(@fake))
    @source.start
    enrolled = events_until(:enrolled).last.identity
    @fake.hold_issuance
    events_until(:expired)

    error = assert_raises(Secinfra::DeadlineExceeded) do
      @source.ensure_identity(Process.clock_gettime(Process::CLOCK_MONOTONIC) + 0.2)
    end
    assert_match(/re-enrolment is still running/, error.message)

    @fake.open_issuance
    reenrolled = @source.ensure_identity(Process.clock_gettime(Process::CLOCK_MONOTONIC) + WAIT)
    refute_equal enrolled.serial, reenrolled.serial
    assert_equal WORKLOAD, reenrolled.spiffe_id
    assert_equal 2, @fake.issues, "the enrolment, and one re-enrolment for every waiter"
  ensure
    @fake.open_issuance
  end

  def test_needs_exactly_one_attestation
    cert, = ca
    bundle = Secinfra::Identity.load_bundle(cert.to_pem)
    assert_kind_of Secinfra::Identity::Source, @source
    assert_raises(ArgumentError) { Secinfra::RotatingIdentity.new(bundle) }
    assert_raises(ArgumentError) { Secinfra::RotatingIdentity.new(bundle, join_token: "a", jwt: "b") }
    assert_raises(ArgumentError) do
      Secinfra::RotatingIdentity.new(bundle, join_token: "a",
                                             rotation: Secinfra::Runtime::RotationPolicy.new(renewal_jitter: 2))
    end
    refute_includes Secinfra::RotatingIdentity.new(bundle, join_token: "sjt_secret").inspect, "sjt_secret"
  end
end
