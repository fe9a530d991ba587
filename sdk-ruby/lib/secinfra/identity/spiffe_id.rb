# frozen_string_literal: true

module Secinfra
  # A SPIFFE ID (+spiffe://<trust domain>/<path>+) checked against the SPIFFE
  # ID specification: a lower-case trust domain of letters, digits, dots,
  # dashes and underscores; path segments of letters, digits, dots, dashes
  # and underscores, none empty, "." or ".."; no port, user info, query or
  # fragment. Peers are authorized by this parsed form, never by a string
  # match on a URI, so "spiffe://a.test/x" cannot be spelled two ways.
  class SpiffeID
    # The URI scheme of every SPIFFE ID.
    SCHEME = "spiffe://"
    # The longest SPIFFE ID the specification allows (bytes).
    MAX_LENGTH = 2048
    # Characters of a trust domain name.
    TRUST_DOMAIN = /\A[a-z0-9._-]+\z/
    # Characters of one path segment.
    SEGMENT = /\A[A-Za-z0-9._-]+\z/

    # @return [String] the trust domain name (+secinfra.local+)
    attr_reader :trust_domain
    # @return [String] the path, "" or starting with "/"
    attr_reader :path

    # Parses +text+.
    #
    # @param text [String]
    # @return [SpiffeID]
    # @raise [ArgumentError] naming the rule +text+ breaks
    def self.parse(text)
      text = text.to_s
      raise ArgumentError, "secinfra: spiffe id: #{text.inspect} is longer than #{MAX_LENGTH} bytes" if text.bytesize > MAX_LENGTH
      raise ArgumentError, "secinfra: spiffe id: #{text.inspect} does not start with #{SCHEME}" unless text.start_with?(SCHEME)

      rest = text.delete_prefix(SCHEME)
      trust_domain, slash, path = rest.partition("/")
      new(parse_trust_domain(trust_domain), slash.empty? ? "" : "/#{path}")
    end

    # Checks a trust domain name; +spiffe://name+ is accepted too.
    #
    # @return [String] the name
    # @raise [ArgumentError]
    def self.parse_trust_domain(name)
      name = name.to_s.delete_prefix(SCHEME).chomp("/")
      unless TRUST_DOMAIN.match?(name)
        raise ArgumentError,
              "secinfra: spiffe id: trust domain #{name.inspect} must be lower-case letters, digits, '.', '-' or '_'"
      end

      name
    end

    # @param trust_domain [String] an already checked name
    # @param path [String] "" or "/segment[/segment...]"
    # @raise [ArgumentError] when a path segment breaks the rules
    def initialize(trust_domain, path)
      unless path.empty?
        segments = path.delete_prefix("/").split("/", -1)
        segments = [""] if segments.empty? # a trailing "/" is an empty segment
        segments.each do |segment|
          next if SEGMENT.match?(segment) && segment != "." && segment != ".."

          raise ArgumentError,
                "secinfra: spiffe id: path #{path.inspect} has a segment #{segment.inspect} that is empty, " \
                "'.', '..' or holds a character other than letters, digits, '.', '-' or '_'"
        end
      end
      @trust_domain = trust_domain
      @path = path
      @string = "#{SCHEME}#{trust_domain}#{path}"
      freeze
    end

    # Whether this ID is in trust domain +name+.
    def member_of?(name) = @trust_domain == name

    # Whether this ID is +prefix+ or below it, segment by segment
    # (+/payments+ covers +/payments/api+ but not +/payments-admin+).
    #
    # @param prefix [SpiffeID]
    def under?(prefix)
      return false unless member_of?(prefix.trust_domain)

      prefix.path.empty? || @path == prefix.path || @path.start_with?("#{prefix.path}/")
    end

    def to_s = @string

    def inspect = "#<Secinfra::SpiffeID #{@string}>"

    def ==(other) = other.is_a?(SpiffeID) && other.to_s == @string
    alias eql? ==

    def hash = @string.hash
  end
end
