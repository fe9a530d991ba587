# frozen_string_literal: true

require "fileutils"
require "json"
require "tmpdir"
require_relative "../secinfra"

module Secinfra
  # Test helpers users need too: a real reference server on loopback.
  module Testing
    # Seconds to wait for the server to say it is serving.
    STARTUP_TIMEOUT = 60.0

    # A clock tests move by hand: +monotonic+ and +now+ advance only by
    # {#advance} (and by +sleep+, which returns at once).
    class FakeClock
      def initialize(now: Time.utc(2026, 1, 1), monotonic: 1000.0)
        @now = now
        @monotonic = monotonic
        @lock = Mutex.new
      end

      def monotonic = @lock.synchronize { @monotonic }

      def now = @lock.synchronize { @now }

      # Moves both clocks forward by +seconds+.
      def advance(seconds)
        @lock.synchronize do
          @monotonic += seconds
          @now += seconds
        end
      end

      def sleep(seconds)
        advance(seconds) if seconds.positive?
      end
    end

    # The reference server (+secinfra-server+: +SECINFRA_REFERENCE_SERVER+, else on
    # PATH, else the repository's .venv-server) in test mode on a free
    # 127.0.0.1 port.
    #
    #   server = Secinfra::Testing::ReferenceServer.new(leaf_ttl_seconds: 10).start
    #   client = server.enrol("spiffe://secinfra.local/my-service")
    #   ...
    #   server.stop
    class ReferenceServer
      # @return [String] https://127.0.0.1:PORT once started
      attr_reader :url
      # @return [String] the data directory
      attr_reader :data_dir

      # @param settings [Hash] serve flags (+leaf_ttl_seconds: 10+ -> +--leaf-ttl-seconds 10+)
      def initialize(data_dir: nil, test_hooks: true, **settings)
        @own_dir = data_dir.nil?
        @data_dir = data_dir || Dir.mktmpdir("secinfra-ruby-test-")
        @settings = { test_hooks: test_hooks }.merge(settings)
        @lines = []
      end

      # The server command (argv prefix).
      def self.command
        env = ENV.fetch("SECINFRA_REFERENCE_SERVER", "")
        return env.split unless env.empty?

        on_path = ENV.fetch("PATH", "").split(File::PATH_SEPARATOR).map { |d| File.join(d, "secinfra-server") }
        found = on_path.find { |f| File.executable?(f) }
        return [found] if found

        venv = File.expand_path("../../../.venv-server/bin/secinfra-server", __dir__)
        return [venv] if File.executable?(venv)

        raise "secinfra: testing: secinfra-server not found: set SECINFRA_REFERENCE_SERVER, put it on PATH, " \
              "or run scripts/ensure-server.sh"
      end

      # Inits the data dir and starts serving; returns once the server is up.
      #
      # @return [self]
      def start
        flags = ["--data-dir", @data_dir, "--host", "127.0.0.1", "--port", "0"]
        @settings.each do |name, value|
          flag = "--#{name.to_s.tr("_", "-")}"
          if value == true
            flags << flag
          elsif value == false
            flags << "--no-#{name.to_s.tr("_", "-")}" if name == :test_hooks
          elsif !value.nil?
            flags.push(flag, value.to_s)
          end
        end
        init_out = IO.popen([*self.class.command, "init", *flags, { err: %i[child out] }], &:read)
        raise "secinfra: testing: reference server init failed:\n#{init_out[-4000..] || init_out}" unless $?.success?

        reader, writer = IO.pipe
        @pid = Process.spawn({ "PYTHONUNBUFFERED" => "1" }, *self.class.command, "serve", *flags,
                             out: File::NULL, err: writer)
        writer.close
        ready = Queue.new
        @reader = Thread.new do
          reader.each_line do |line|
            @lines << line
            @lines.shift if @lines.size > 200
            next unless line.start_with?("{")

            record = begin
              JSON.parse(line)
            rescue JSON::ParserError
              nil
            end
            ready << record["url"] if record && record["message"] == "serving" && record["url"]
          end
          ready << nil
        end
        @url = Timeout.timeout(STARTUP_TIMEOUT) { ready.pop }
        raise "secinfra: testing: the reference server did not start:\n#{@lines.last(20).join}" if @url.nil?

        self
      rescue Timeout::Error
        stop
        raise "secinfra: testing: the reference server did not start in #{STARTUP_TIMEOUT} s"
      rescue StandardError
        stop # no server or data dir is left behind
        raise
      end

      # SIGTERMs the server, waits, and removes a data dir it created.
      def stop
        if @pid
          begin
            Process.kill("TERM", @pid)
            Timeout.timeout(10) { Process.wait(@pid) }
          rescue Errno::ESRCH, Errno::ECHILD
            nil
          rescue Timeout::Error
            Process.kill("KILL", @pid)
            Process.wait(@pid)
          end
          @pid = nil
        end
        FileUtils.rm_rf(@data_dir) if @own_dir
      end

      # @return [String] the trust bundle written by init (PEM file)
      def bundle_file = File.join(@data_dir, "admin", "bundle.pem")

      # A client with the admin identity written by init.
      def admin_client(**settings)
        admin = File.join(@data_dir, "admin")
        Client.from_files(@url, cert_file: File.join(admin, "cert.pem"), key_file: File.join(admin, "key.pem"),
                                bundle_file: bundle_file, **settings)
      end

      # A new one-time join token for +spiffe_id+.
      def join_token(spiffe_id, ttl_seconds: 600)
        with_admin { |a| a.identity.create_join_token(spiffe_id: spiffe_id, ttl_seconds: ttl_seconds).token }
      end

      # A client enrolled as +spiffe_id+ with a fresh join token.
      def enrol(spiffe_id, **settings)
        Client.enrol(@url, join_token: join_token(spiffe_id), bundle_file: bundle_file, **settings)
      end

      # Grants +user+ (default +workload:<spiffe_id>+) +relation+ on +object+.
      def grant(spiffe_id, relation, object)
        with_admin do |a|
          a.authz.write_tuples(writes: [V1::TupleKey.new(user: "workload:#{spiffe_id}", relation: relation,
                                                         object: object)]).revision
        end
      end

      # Calls the control API (test mode): +method+ "POST", +path+ "/_test/scripts".
      def control(method, path, body = nil)
        admin = File.join(@data_dir, "admin")
        uri = URI.parse(@url)
        http = Net::HTTP.new(uri.host, uri.port)
        http.use_ssl = true
        http.verify_mode = OpenSSL::SSL::VERIFY_PEER
        http.verify_hostname = false
        http.cert_store = Identity.load_bundle(File.read(bundle_file)).store
        http.cert = OpenSSL::X509::Certificate.new(File.read(File.join(admin, "cert.pem")))
        http.key = OpenSSL::PKey.read(File.read(File.join(admin, "key.pem")))
        http.start do |h|
          req = Runtime::Transport::REQUEST_CLASSES.fetch(method).new(path, "Content-Type" => "application/json")
          req.body = JSON.generate(body) if body
          res = h.request(req)
          raise "secinfra: testing: #{method} #{path}: HTTP #{res.code}: #{res.body}" unless res.code.start_with?("2")

          res.body.to_s.empty? ? {} : JSON.parse(res.body)
        end
      end

      # Queues response steps for +rpc+ (control API).
      def script(rpc, steps) = control("POST", "/_test/scripts", { "rpc" => rpc, "steps" => steps })

      # The request log (control API), optionally for one RPC.
      def requests(rpc: nil)
        control("GET", "/_test/requests#{rpc ? "?rpc=#{rpc}" : ""}")["requests"]
      end

      private

      def with_admin
        admin = admin_client
        yield admin
      ensure
        admin&.close
      end
    end
  end
end
