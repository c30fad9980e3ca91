import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// File operations with the permissions and atomicity that credentials need.
public enum FileSystem {
    /// Creates `path` with mode 0600 whatever the umask is, failing if it already exists.
    public static func createPrivateFile(atPath path: String, contents: Data) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST {
                throw FleetError.config("\(path) already exists; refusing to overwrite it")
            }
            throw FleetError.config("cannot create \(path): \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        // The umask may have narrowed the mode, never widened it, but be explicit.
        fchmod(fd, 0o600)
        try writeAll(fd: fd, data: contents, path: path)
        guard fsync(fd) == 0 else {
            throw FleetError.config("cannot sync \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Writes `contents` to `path` atomically (temporary file, fsync, rename) with mode 0600.
    public static func writePrivateFileAtomically(atPath path: String, contents: Data) throws {
        let temporary = path + ".tmp-\(getpid())"
        unlink(temporary)
        try createPrivateFile(atPath: temporary, contents: contents)
        guard rename(temporary, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporary)
            throw FleetError.config("cannot replace \(path): \(message)")
        }
    }

    /// The permission bits of `path`, or nil when it does not exist.
    public static func permissions(ofPath path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o777
    }

    /// Whether something exists at `path`.
    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// The bytes of a small file (at most `limit`), read with plain system calls, or nil when it
    /// cannot be opened or read or is larger. For secret files, read on every use: a run reads
    /// thousands of them.
    public static func readSmallFile(atPath path: String, limit: Int = 1 << 20) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > limit { return nil }
        }
    }

    private static func writeAll(fd: Int32, data: Data, path: String) throws {
        try data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            guard let base = buffer.baseAddress else { return }
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, base + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw FleetError.config("cannot write \(path): \(String(cString: strerror(errno)))")
                }
                offset += written
            }
        }
    }
}
