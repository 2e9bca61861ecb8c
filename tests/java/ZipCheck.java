import java.io.BufferedInputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.util.Enumeration;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipInputStream;

/** Reads an archive with java.util.zip twice (ZipFile, then ZipInputStream), checking each
 *  entry's bytes against the size and CRC-32 its headers give; prints one line per reader. */
public class ZipCheck {
    static long[] drain(InputStream in, ZipEntry entry) throws Exception {
        CRC32 crc = new CRC32();
        byte[] buffer = new byte[1 << 20];
        long total = 0;
        for (int n; (n = in.read(buffer)) > 0; ) {
            crc.update(buffer, 0, n);
            total += n;
        }
        if (entry.getSize() != total || entry.getCrc() != crc.getValue()) {
            throw new IllegalStateException(entry.getName() + ": read " + total + " B crc "
                + Long.toHexString(crc.getValue()) + ", header says " + entry.getSize()
                + " B crc " + Long.toHexString(entry.getCrc()));
        }
        return new long[] {total, crc.getValue()};
    }

    public static void main(String[] args) throws Exception {
        long count = 0, bytes = 0;
        try (ZipFile zip = new ZipFile(args[0])) {
            for (Enumeration<? extends ZipEntry> e = zip.entries(); e.hasMoreElements(); ) {
                ZipEntry entry = e.nextElement();
                try (InputStream in = zip.getInputStream(entry)) {
                    bytes += drain(in, entry)[0];
                }
                count++;
            }
        }
        System.out.println("ZipFile " + count + " " + bytes);

        count = 0;
        bytes = 0;
        try (ZipInputStream zin = new ZipInputStream(
                new BufferedInputStream(new FileInputStream(args[0]), 1 << 20))) {
            for (ZipEntry entry; (entry = zin.getNextEntry()) != null; ) {
                bytes += drain(zin, entry)[0];
                count++;
            }
        }
        System.out.println("ZipInputStream " + count + " " + bytes);
    }
}
