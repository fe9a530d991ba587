# frozen_string_literal: true

require "base64"
require "json"
require "time"

module Secinfra
  module RPC
    # A response body (or a request given as JSON) that does not match its
    # message: +path+ names the offending value (+secret.version+).
    class DecodeError < StandardError
      # @return [String] where in the document the problem is
      attr_reader :path

      # @param path [String]
      # @param message [String]
      def initialize(path, message)
        @path = path
        super("#{path.empty? ? "<root>" : path}: #{message}")
      end
    end

    # Conversions between Ruby values and the JSON wire forms (spec 1.6).
    module Wire
      TIMESTAMP = /\A(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\z/

      module_function

      def kind_of_json(value)
        case value
        when nil then "null"
        when true, false then "a boolean"
        when Integer, Float then "a number"
        when String then "a string"
        when Array then "a list"
        when Hash then "an object"
        else value.class.name
        end
      end

      def encode_float(value)
        f = Float(value)
        return "NaN" if f.nan?
        return (f.positive? ? "Infinity" : "-Infinity") if f.infinite?

        f
      end

      def decode_float(value, path)
        case value
        when Integer, Float then value.to_f
        when "NaN" then Float::NAN
        when "Infinity" then Float::INFINITY
        when "-Infinity" then -Float::INFINITY
        when String
          Float(value)
        else
          raise DecodeError.new(path, "expected a number, got #{kind_of_json(value)}")
        end
      rescue ArgumentError
        raise DecodeError.new(path, "expected a number, got a string that is not one")
      end

      def decode_integer(value, path, range)
        int = case value
              when Integer then value
              when Float
                raise DecodeError.new(path, "expected an integer, got a fraction") unless value.finite? && value == value.floor

                value.to_i
              when String
                raise DecodeError.new(path, "expected an integer, got a string that is not one") unless value.match?(/\A-?\d+\z/)

                Integer(value, 10)
              else
                raise DecodeError.new(path, "expected an integer, got #{kind_of_json(value)}")
              end
        raise DecodeError.new(path, "integer out of range") unless range.cover?(int)

        int
      end

      def decode_bool(value, path)
        return value if [true, false].include?(value)

        raise DecodeError.new(path, "expected a boolean, got #{kind_of_json(value)}")
      end

      def decode_bytes(value, path)
        raise DecodeError.new(path, "expected a base64 string, got #{kind_of_json(value)}") unless value.is_a?(String)

        text = value.tr("-_", "+/")
        text += "=" * (-text.length % 4)
        raise DecodeError.new(path, "invalid base64") unless text.match?(%r{\A[A-Za-z0-9+/]*={0,2}\z})

        Base64.strict_decode64(text)
      rescue ArgumentError
        raise DecodeError.new(path, "invalid base64")
      end

      def decode_enum(mod, value, path, strict)
        raise DecodeError.new(path, "expected an enum string, got #{kind_of_json(value)}") unless value.is_a?(String)

        found = mod::VALUES.find { |v| v == value }
        return found if found
        raise DecodeError.new(path, "unknown enum value #{value.inspect}") if strict

        mod::VALUES.first
      end

      # RFC 3339 in UTC with Z; 0, 3 or 6 fractional digits.
      def encode_timestamp(value)
        raise ArgumentError, "secinfra: timestamps must be Time values" unless value.is_a?(Time)

        utc = value.getutc
        text = utc.strftime("%Y-%m-%dT%H:%M:%S")
        usec = utc.usec
        if usec.positive? && (usec % 1000).zero?
          text += format(".%03d", usec / 1000)
        elsif usec.positive?
          text += format(".%06d", usec)
        end
        "#{text}Z"
      end

      def decode_timestamp(value, path)
        raise DecodeError.new(path, "expected an RFC 3339 timestamp string, got #{kind_of_json(value)}") unless value.is_a?(String)

        m = TIMESTAMP.match(value)
        raise DecodeError.new(path, "expected an RFC 3339 timestamp") unless m

        frac = (m[7] || "0").ljust(9, "0")[0, 6].to_i
        offset = m[8] ? "+00:00" : "#{m[9]}#{m[10]}:#{m[11]}"
        sec = [m[6].to_i, 59].min
        Time.new(m[1].to_i, m[2].to_i, m[3].to_i, m[4].to_i, m[5].to_i, Rational(sec * 1_000_000 + frac, 1_000_000), offset).getutc
      rescue ArgumentError => e
        raise DecodeError.new(path, "invalid RFC 3339 timestamp (#{e.message})")
      end

      def encode_map_key(key, kind)
        case kind
        when :bool then key ? "true" : "false"
        else key.to_s
        end
      end

      def decode_map_key(key, kind, path)
        case kind
        when :string then key
        when :bool
          return true if key == "true"
          return false if key == "false"

          raise DecodeError.new(path, "expected a boolean key")
        else
          decode_integer(key, path, Field::INT_RANGES.fetch(kind))
        end
      end
    end
  end
end
