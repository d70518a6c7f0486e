// Java's CRC-64-AVRO fingerprint of each Avro schema file's Parsing Canonical Form (see pom.xml for how to run it).
// One line per file: the file, the 8 bytes of SchemaNormalization.parsingFingerprint("CRC-64-AVRO", schema) in hex
// (the order single-object encoding writes them), and parsingFingerprint64 as a signed long.
import java.io.File;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;

public class Fingerprints {
  public static void main(String[] args) throws Exception {
    for (String path : args) {
      Schema schema = new Schema.Parser().parse(new File(path)); // a parser per file: each contract stands alone
      StringBuilder hex = new StringBuilder();
      for (byte b : SchemaNormalization.parsingFingerprint("CRC-64-AVRO", schema)) {
        hex.append(String.format("%02x", b));
      }
      System.out.println(path + "\t" + hex + "\t" + SchemaNormalization.parsingFingerprint64(schema));
    }
  }
}
